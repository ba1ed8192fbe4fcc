package storage

// SchemaKey is where a store records its schema version, for tests that
// plant records of other versions.
const SchemaKey = schemaKey
