-- The copied rows are ordinary log rows: nothing to undo.
SELECT 1;
