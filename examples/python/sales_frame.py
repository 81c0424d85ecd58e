#!/usr/bin/python3
"""Revenue to date, day by day, from a slow SQL query, as a pandas
DataFrame: computed once, then read by every process that asks, until the
orders change (README.md, "Python").

    sales_frame.py STORE SALES_DB [ORDERS]

STORE is made if missing. SALES_DB is a SQLite file with a table
orders(day, region, amount); if it does not exist, a demo one is made
with ORDERS orders (default 20000) spread over a year.
"""
import os
import sqlite3
import sys

import larder

# A running total done the slow way, as many reports do it: a recursive
# CTE makes the 365 days, and each day is joined with every order up to
# it, so the orders are scanned once per day.
QUERY = """
WITH RECURSIVE day(d) AS (SELECT 0 UNION ALL SELECT d + 1 FROM day WHERE d < 364)
SELECT d AS day, COUNT(o.amount) AS orders, ROUND(SUM(o.amount), 2) AS revenue
FROM day JOIN orders AS o ON o.day <= d
GROUP BY d ORDER BY d
"""

# The result's version: it moves when an order is added, removed or
# changed, so the cached frame is never older than the table.
VERSION_QUERY = "SELECT COUNT(*), MAX(rowid), TOTAL(amount) FROM orders"


def revenue_to_date(store, db):
    frame = store.sql(db, QUERY, version_query=VERSION_QUERY, as_frame=True)
    # The cached result is text (as larder sql prints it): give the
    # columns their types.
    return frame.astype({"day": int, "orders": int, "revenue": float})


def make_demo_db(path, orders):
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (day INTEGER NOT NULL, region TEXT NOT NULL, "
                    "amount REAL NOT NULL)")
        con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                        ((i % 365, ("emea", "apac", "amer")[i % 3],
                          (i * 7919 % 10000) / 100) for i in range(orders)))
    con.close()


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: sales_frame.py STORE SALES_DB [ORDERS]")
    store_dir, db = sys.argv[1], sys.argv[2]
    if not os.path.exists(db):
        make_demo_db(db, int(sys.argv[3]) if len(sys.argv) == 4 else 20000)
    with larder.Store(store_dir, create=True) as store:
        frame = revenue_to_date(store, db)
    print(frame.tail(3).to_string(index=False))


if __name__ == "__main__":
    main()
