//! Thrift message headers over binary and compact protocols and every transport.
