DROP TABLE switches;
DROP TABLE quotes;
