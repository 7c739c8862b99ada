package dump

// BuildEdgeDB exposes the edge-case database to the external tests of
// this directory (verify_test.go).
var BuildEdgeDB = buildEdgeDB

// NorthwindDB exposes the Northwind corpus database builder likewise.
var NorthwindDB = northwindDB
