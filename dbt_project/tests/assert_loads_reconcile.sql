-- Fails on every load whose rows are not all accounted for.
select *
from {{ ref('load_reconciliation') }}
where file_rows <> raw_rows
   or raw_rows <> staged_rows + duplicate_rows + rejected_rows
   or duplicate_rows < 0
