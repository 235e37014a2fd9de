//! Protocol detection from the first bytes of a connection.
