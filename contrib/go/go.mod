module securelink

go 1.19
