"""Live subscriptions: order status and customer activity, resumable by change-feed cursor."""
