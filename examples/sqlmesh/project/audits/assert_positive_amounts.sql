AUDIT (
  name assert_positive_amounts
);

SELECT * FROM @this_model WHERE amount_cents < 0
