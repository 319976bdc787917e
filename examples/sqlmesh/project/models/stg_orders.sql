MODEL (
  name shop.stg_orders,
  kind VIEW,
  grain order_id,
  audits (assert_positive_amounts)
);

SELECT
  order_id,
  customer_id,
  order_date,
  amount_cents
FROM shop.raw_orders
