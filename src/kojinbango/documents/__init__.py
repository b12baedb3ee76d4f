"""Printed documents (帳票): notices and forms rendered as print-ready PDF."""
