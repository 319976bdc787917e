-- Fails if any order has a negative amount.
select order_id, amount_cents
from {{ ref('stg_orders') }}
where amount_cents < 0
