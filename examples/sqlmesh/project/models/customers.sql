MODEL (
  name shop.customers,
  kind FULL,
  grain customer_id
);

SELECT
  customer_id,
  COUNT(*) AS orders,
  SUM(amount_cents) AS amount_cents
FROM shop.stg_orders
GROUP BY customer_id
