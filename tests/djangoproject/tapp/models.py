"""Models of the test project (data binding, background saves)."""
