-- Version 17 (issue 8): the inbox adds up its totals from the per-day report (store::count):
-- the rows of one dimension, or of some of its values, over a range of days. The primary key
-- leads with the day, so without this index each total read the whole table.
CREATE INDEX report_days_by_value ON report_days (dim, value, day);
