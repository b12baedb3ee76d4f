"""市町村: a municipality and its systems (resident register, and later addressee, business, intermediate)."""
