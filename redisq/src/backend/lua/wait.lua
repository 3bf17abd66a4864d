-- Marks a task's status record as waited on, if it exists, so that the worker that
-- finishes it rings its done list. Returns 1 when marked, 0 when there is no record.
-- KEYS[1] the record
if set_record(KEYS[1], F.waiting, 1) then
  return 1
end
return 0
