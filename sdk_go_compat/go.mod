module github.com/dsfeatures/dsfeatures/sdk_go_compat

go 1.22
