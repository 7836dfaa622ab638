// The support console: plain JS over the public GraphQL API (no build step).
// Open orders of one store update live through `orderStatusChanged(storeId, after)`; when the
// socket drops, the console reconnects and resumes with `after: <last cursor>`, so it misses
// nothing and shows nothing twice.
"use strict";

const STORES = /* GraphQL */ `query ConsoleStores { stores { id name } }`;

const STORE_FEED = /* GraphQL */ `subscription ConsoleStoreFeed($storeId: ID!, $after: String) {
  orderStatusChanged(storeId: $storeId, after: $after) {
    cursor orderId customerId previousStatus status at
    order { externalId fulfillment isDelayed promisedAt total { formatted } }
  }
}`;

const CUSTOMER = /* GraphQL */ `query ConsoleCustomer($id: ID!) {
  customer(id: $id) {
    id displayName email phone
    loyalty { program balance tier }
    orders(first: 5) { edges { node { externalId status placedAt total { formatted } } } }
    interactions(first: 5) { edges { node { channel kind subject occurredAt } } }
  }
}`;

const CUSTOMER_FEED = /* GraphQL */ `subscription ConsoleCustomerFeed($customerId: ID!, $after: String) {
  customerActivity(customerId: $customerId, after: $after) {
    __typename
    ... on OrderStatusEvent { cursor orderId status at }
    ... on LoyaltyChangeEvent { cursor points balance reason at }
    ... on InteractionEvent { cursor channel kind subject at }
  }
}`;

const TERMINAL = new Set(["COMPLETED", "CANCELED"]);

const $ = (id) => document.getElementById(id);
const token = () => localStorage.getItem("guestgraph.token") || undefined;
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql";

const client = graphqlWs.createClient({
  url: wsUrl,
  lazy: true,
  retryAttempts: 0, // we resubscribe ourselves, with the newest cursor
  keepAlive: 10000,
  connectionParams: () => (token() ? { Authorization: "Bearer " + token() } : {}),
  on: {
    connected: () => setConnection("live", "live"),
    closed: () => setConnection("reconnecting", "reconnecting…"),
  },
});

function setConnection(cls, text) {
  $("connection").className = cls;
  $("connection").textContent = text;
}

async function query(document, variables) {
  const headers = { "content-type": "application/json" };
  if (token()) headers.authorization = "Bearer " + token();
  const response = await fetch("/graphql", {
    method: "POST", headers, body: JSON.stringify({ query: document, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(body.errors.map((e) => e.message).join("; "));
  return body.data;
}

// follow(document, variables, onEvent): a resumable subscription; returns a stop function.
function follow(document, variables, onEvent) {
  let cursor = variables.after || null;
  let stopped = false;
  let unsubscribe = () => {};
  let delay = 250;
  const run = () => {
    if (stopped) return;
    unsubscribe = client.subscribe(
      { query: document, variables: { ...variables, after: cursor } },
      {
        next: (result) => {
          if (result.errors) { $("error").textContent = result.errors[0].message; return; }
          delay = 250;
          const event = Object.values(result.data)[0];
          cursor = event.cursor;
          onEvent(event);
        },
        error: () => { if (!stopped) setTimeout(run, (delay = Math.min(delay * 2, 5000))); },
        complete: () => {},
      },
    );
  };
  run();
  return () => { stopped = true; unsubscribe(); };
}

const state = { orders: new Map(), stopStore: () => {}, stopCustomer: () => {} };

function shortId(globalId) {
  try { return "#" + atob(globalId).split(":")[1]; } catch { return globalId; }
}

function renderOrders() {
  const rows = [...state.orders.values()].sort((a, b) => a.firstAt - b.firstAt);
  $("orders").replaceChildren(...rows.map((o) => {
    const tr = document.createElement("tr");
    tr.dataset.orderId = o.orderId;
    const delayed = o.order && o.order.isDelayed;
    tr.className = (delayed ? "delayed " : "") + (o.fresh ? "flash" : "");
    o.fresh = false;
    const label = o.order ? o.order.externalId + " · " + o.order.total.formatted : shortId(o.orderId);
    for (const [text, cls] of [[label], [o.status, "status"],
                               [new Date(o.at).toLocaleTimeString()],
                               [o.customerId ? shortId(o.customerId) : "guest"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.addEventListener("click", () => showCustomer(o.customerId));
    return tr;
  }));
  $("summary").textContent = rows.length + " open order(s)";
}

function onOrderEvent(event) {
  const existing = state.orders.get(event.orderId);
  if (TERMINAL.has(event.status)) {
    state.orders.delete(event.orderId);
  } else {
    state.orders.set(event.orderId, {
      ...event,
      firstAt: existing ? existing.firstAt : Date.parse(event.at),
      fresh: true,
    });
  }
  renderOrders();
}

function followStore(storeId) {
  state.stopStore();
  state.orders.clear();
  renderOrders();
  $("error").textContent = "";
  if (!storeId) return;
  // after "0": build the open-order list from the store's whole status history, then live
  state.stopStore = follow(STORE_FEED, { storeId, after: "0" }, onOrderEvent);
}

function showCustomer(customerId) {
  state.stopCustomer();
  const panel = $("customer");
  if (!customerId) {
    panel.innerHTML = "<h2>Customer</h2><p class='muted'>A guest order: no customer profile.</p>";
    return;
  }
  panel.innerHTML = "";
  const title = document.createElement("h2");
  title.textContent = "Customer " + shortId(customerId);
  const profile = document.createElement("div");
  const live = document.createElement("h2");
  live.textContent = "Live activity";
  const list = document.createElement("ol");
  list.reversed = true;
  panel.append(title, profile, live, list);
  query(CUSTOMER, { id: customerId }).then(({ customer }) => {
    if (!customer) { profile.textContent = "Not visible to you."; return; }
    title.textContent = customer.displayName || title.textContent;
    const lines = [
      [customer.email, customer.phone].filter(Boolean).join(" · "),
      customer.loyalty ? `${customer.loyalty.program}: ${customer.loyalty.balance} points${customer.loyalty.tier ? " (" + customer.loyalty.tier + ")" : ""}` : "no loyalty account",
      "Last orders: " + customer.orders.edges.map(({ node }) => `${node.externalId} ${node.status} ${node.total.formatted}`).join("; "),
      "Interactions: " + customer.interactions.edges.map(({ node }) => `${node.channel} ${node.kind}${node.subject ? " · " + node.subject : ""}`).join("; "),
    ];
    profile.replaceChildren(...lines.map((text) => Object.assign(document.createElement("p"), { textContent: text })));
  }).catch((err) => { profile.textContent = err.message; });
  state.stopCustomer = follow(CUSTOMER_FEED, { customerId, after: "0" }, (e) => {
    const li = document.createElement("li");
    const when = new Date(e.at).toLocaleString();
    if (e.__typename === "OrderStatusEvent") li.textContent = `${when} · order ${shortId(e.orderId)} ${e.status}`;
    else if (e.__typename === "LoyaltyChangeEvent") li.textContent = `${when} · ${e.points > 0 ? "+" : ""}${e.points} points (balance ${e.balance})${e.reason ? " · " + e.reason : ""}`;
    else li.textContent = `${when} · ${e.channel || ""} ${e.kind || ""} ${e.subject || ""}`;
    list.prepend(li);
  });
}

async function start() {
  try {
    const { stores } = await query(STORES);
    const select = $("store");
    select.replaceChildren(new Option("— pick a store —", ""), ...stores.map((s) => new Option(s.name, s.id)));
    select.addEventListener("change", () => followStore(select.value));
    const wanted = new URLSearchParams(location.search).get("store");
    if (wanted) { select.value = wanted; followStore(wanted); }
  } catch (err) {
    $("error").textContent = "Cannot load stores: " + err.message;
  }
}

start();
