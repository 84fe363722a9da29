module edgegate.io/bench/pace

go 1.22
