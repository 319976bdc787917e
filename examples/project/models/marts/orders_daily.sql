-- Daily order totals (returned orders excluded from the amount).
select
    order_date,
    count(*) as order_count,
    count(distinct customer_id) as customer_count,
    sum(case when status <> 'returned' then amount else 0 end) as total_amount
from {{ ref('stg_orders') }}
group by order_date
order by order_date
