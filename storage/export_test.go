package storage

import "context"

// SchemaKey is where a store records its schema version, for tests that
// plant records of other versions.
const SchemaKey = schemaKey

// CheckSchema runs the check a store makes when opened on an open store,
// for tests of instances that open one at once.
func CheckSchema(ctx context.Context, s Store, where string) error {
	return checkSchema(ctx, s, where)
}

// CompareSchema compares a schema record with the version a build reads,
// for tests of what builds of an older version make of a store.
func CompareSchema(raw []byte, where string, readable int) error {
	_, err := compareSchema(raw, where, readable)
	return err
}
