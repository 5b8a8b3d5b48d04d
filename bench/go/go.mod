module securelink-bench

go 1.19

require securelink v0.0.0

replace securelink => ../../contrib/go
