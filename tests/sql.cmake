# SQL sources (SQLite here; PostgreSQL in its own file): the normalizer,
# the formats, versions, tracked tables, errors, concurrency, memory.
larder_test(test_sql test_sql.c)
