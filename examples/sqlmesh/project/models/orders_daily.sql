MODEL (
  name shop.orders_daily,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column order_date
  ),
  start '2024-01-01',
  grain order_date
);

SELECT
  order_date,
  COUNT(*) AS orders,
  SUM(amount_cents) AS amount_cents
FROM shop.stg_orders
WHERE order_date BETWEEN @start_date AND @end_date
GROUP BY order_date
