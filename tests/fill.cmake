# Single-flight fills across processes (leases, takeover, herd).
larder_test(test_fill test_fill.c)
