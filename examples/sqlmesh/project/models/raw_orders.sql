MODEL (
  name shop.raw_orders,
  kind SEED (
    path '../seeds/orders.csv'
  ),
  columns (
    order_id INTEGER,
    customer_id INTEGER,
    order_date DATE,
    amount_cents INTEGER
  ),
  grain order_id
);
