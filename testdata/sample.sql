-- A small sample database for sluice's README quick start:
--   go run ./cmd/sluice restore --db sample.db testdata/sample.sql
-- It has a few related tables, every storage class, an index, a view and
-- a trigger. Plain SQL, also loadable with: sqlite3 sample.db < testdata/sample.sql
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE customers(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  email TEXT UNIQUE,
  joined DATETIME,
  vip BOOLEAN DEFAULT 0
);
INSERT INTO customers(name, email, joined, vip) VALUES
  ('Ada Lovelace', 'ada@example.com', '2024-01-05 10:00:00', 1),
  ('Grace Hopper', 'grace@example.com', '2024-02-11 08:30:00', 0),
  ('Katherine Johnson', 'kj@example.com', '2024-03-20 17:45:00', 1),
  ('Émilie du Châtelet', 'emilie@example.com', '2024-04-01 09:15:00', 0),
  ('李白', NULL, NULL, 0);
CREATE TABLE products(
  sku TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  price REAL NOT NULL,
  stock INTEGER NOT NULL DEFAULT 0,
  thumbnail BLOB
) WITHOUT ROWID;
INSERT INTO products VALUES
  ('SKU-001', 'Difference engine (model)', 199.0, 3, X'89504E470D0A1A0A'),
  ('SKU-002', 'Punched cards, box of 1000', 12.5, 140, NULL),
  ('SKU-003', 'Slide rule', 34.99, 0, X'00FF00FF'),
  ('SKU-004', 'Compiler manual "A-0"', 0.0, 9223372036854775807, NULL);
CREATE TABLE orders(
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  sku TEXT NOT NULL REFERENCES products(sku),
  qty INTEGER NOT NULL CHECK (qty > 0),
  placed TEXT NOT NULL,
  note
);
INSERT INTO orders VALUES
  (1, 1, 'SKU-001', 1, '2024-05-01T12:00:00Z', 'gift wrap'),
  (2, 2, 'SKU-002', 3, '2024-05-02T09:10:00Z', 42),
  (3, 3, 'SKU-003', 2, '2024-05-03T15:20:00Z', 2.5),
  (4, 1, 'SKU-002', 10, '2024-05-04T11:00:00Z', X'CAFE'),
  (5, 5, 'SKU-004', 1, '2024-05-05T18:30:00Z', NULL),
  (6, 4, 'SKU-001', 1, '2024-05-06T07:05:00Z', 'it''s for a museum');
CREATE TABLE audit(
  at TEXT DEFAULT CURRENT_TIMESTAMP,
  what TEXT
);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE VIEW order_totals AS
  SELECT o.id, c.name, p.title, o.qty * p.price AS total
  FROM orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.sku = o.sku;
CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN
  INSERT INTO audit(what) VALUES ('order ' || NEW.id);
END;
COMMIT;
