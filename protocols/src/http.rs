//! HTTP helpers the proxy needs: authority and trace headers.
