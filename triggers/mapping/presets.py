"""Ready-made transform scripts a member can start from (SPEC section 4, "Presets").

Each preset is `{"label", "description", "script"}`; choosing one copies its script into the
trigger's mapping, where the member can edit it. The scripts run in the same sandbox as any
member's script (see `triggers.mapping.script`), and the tests run each one on a realistic
payload from its sender and check the result with `parse_start_requests`.
"""

from __future__ import annotations

DEFAULT_SCRIPT = """\
// Returns the body unchanged: it must already be a start request, such as
// {"targetUserIds": ["<userId>"], "variables": {"firstName": "Ada"}}, Atomic's
// {"flows": [...]} envelope, or a list of starts. Edit it to reshape what your sender posts.
function transform(request) {
  return request.body;
}
"""

STRIPE_EVENT_SCRIPT = """\
// A Stripe event (https://docs.stripe.com/api/events/object), e.g. invoice.payment_failed
// or customer.subscription.created. The target is the Stripe customer the event's object
// belongs to: its metadata.userId when your integration stores your userId there, else the
// Stripe customer id (cus_...). The event id makes Stripe's retries of one event start the
// flow once.
function transform(request) {
  const event = request.body;
  const object = (event.data && event.data.object) || {};
  const customer = object.object === "customer" ? object.id : object.customer;
  const customerId = typeof customer === "object" && customer !== null ? customer.id : customer;
  const userId = (object.metadata && object.metadata.userId) || customerId;
  if (typeof userId !== "string" || userId === "") {
    throw new Error("Stripe event " + event.id + " (" + event.type + ") names no customer");
  }
  const variables = { eventType: event.type, objectType: object.object, objectId: object.id };
  const amount = object.amount_due ?? object.amount ?? object.amount_total;
  if (typeof amount === "number") variables.amount = amount / 100;
  if (typeof object.currency === "string") variables.currency = object.currency.toUpperCase();
  if (typeof object.status === "string") variables.status = object.status;
  if (typeof object.hosted_invoice_url === "string") variables.invoiceUrl = object.hosted_invoice_url;
  return {
    targetUserIds: [userId],
    flowInvocationId: event.id,
    variables: variables,
    metadata: { source: "stripe", stripeEventId: event.id, livemode: event.livemode === true },
  };
}
"""

SHOPIFY_ORDER_SCRIPT = """\
// A Shopify order webhook (topics orders/create, orders/paid, orders/fulfilled; the body is
// the order, https://shopify.dev/docs/api/admin-rest/latest/resources/webhook). The target is
// the order's customer id (Shopify's numeric id, as a string). Shopify sends the same
// X-Shopify-Webhook-Id on every retry of one delivery, so it starts the flow once; without
// it, the topic and order id do.

// Shopify's ids are larger than the integers JavaScript numbers hold exactly (2^53), so they
// are read from the GraphQL id, "gid://shopify/Customer/115310627314723954", which is text.
function shopifyId(object) {
  const gid = object.admin_graphql_api_id;
  if (typeof gid === "string" && gid.indexOf("/") >= 0) return gid.slice(gid.lastIndexOf("/") + 1);
  return String(object.id);
}

function transform(request) {
  const order = request.body;
  if (!order.customer || order.customer.id === undefined || order.customer.id === null) {
    throw new Error("Shopify order " + order.name + " has no customer (a guest checkout?)");
  }
  const topic = request.headers["x-shopify-topic"] || "orders";
  const webhookId = request.headers["x-shopify-webhook-id"];
  const items = order.line_items || [];
  return {
    targetUserIds: [shopifyId(order.customer)],
    flowInvocationId: webhookId || "shopify-" + topic + "-" + shopifyId(order),
    variables: {
      firstName: order.customer.first_name || "",
      orderName: order.name,
      orderNumber: order.order_number,
      total: order.total_price,
      currency: order.currency,
      itemCount: items.reduce(function (sum, item) { return sum + (item.quantity || 0); }, 0),
      firstItem: items.length ? items[0].title : "",
      statusUrl: order.order_status_url || "",
    },
    metadata: { source: "shopify", topic: topic, shop: request.headers["x-shopify-shop-domain"] || "" },
  };
}
"""

SEGMENT_TRACK_SCRIPT = """\
// A Segment webhook destination call (https://segment.com/docs/connections/spec/track/):
// a track event for a known user. The userId is the target, the event's properties become
// variables, and messageId (unique per event, kept on Segment's retries) starts it once.
function transform(request) {
  const call = request.body;
  if (call.type !== "track") {
    throw new Error("Expected a Segment track call, got " + call.type);
  }
  if (typeof call.userId !== "string" || call.userId === "") {
    throw new Error("The Segment event " + call.messageId + " has no userId (an anonymous visitor?)");
  }
  return {
    targetUserIds: [call.userId],
    flowInvocationId: call.messageId,
    variables: Object.assign({ event: call.event }, call.properties || {}),
    metadata: { source: "segment", timestamp: call.timestamp || "" },
  };
}
"""

PRESETS: dict[str, dict[str, str]] = {
    "default": {
        "label": "Start request as sent",
        "description": (
            "Returns the body unchanged: it must already be a start request (or Atomic's envelope, or a list)."
        ),
        "script": DEFAULT_SCRIPT,
    },
    "stripe_event": {
        "label": "Stripe event",
        "description": (
            "Starts the flow for the Stripe customer of the event (metadata.userId if set, else cus_...), "
            "once per event id; amount, currency and status become variables."
        ),
        "script": STRIPE_EVENT_SCRIPT,
    },
    "shopify_order": {
        "label": "Shopify order",
        "description": (
            "Starts the flow for the order's customer, once per webhook delivery; order name, total, "
            "item count and status URL become variables."
        ),
        "script": SHOPIFY_ORDER_SCRIPT,
    },
    "segment_track": {
        "label": "Segment track event",
        "description": "Starts the flow for the event's userId, once per messageId; its properties become variables.",
        "script": SEGMENT_TRACK_SCRIPT,
    },
}
