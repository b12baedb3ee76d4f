"""The municipality's staff terminal (職員端末): accounts with roles, login with a second factor,
per-applicant re-authentication, idle lock and the access log."""
