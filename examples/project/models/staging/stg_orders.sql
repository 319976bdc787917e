select
    cast(id as integer) as order_id,
    cast(customer_id as integer) as customer_id,
    cast(order_date as date) as order_date,
    lower(status) as status,
    cast(amount_cents as bigint) as amount_cents,
    {{ cents_to_dollars('amount_cents') }} as amount
from {{ ref('raw_orders') }}
