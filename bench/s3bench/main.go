package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

func main() {
	var o options
	var runExpr string
	flag.StringVar(&o.out, "out", "", "write the report to this markdown `file`, keeping earlier runs in it")
	flag.StringVar(&o.dir, "dir", "", "work `directory` for the raw-disk files and walrus's data (default: var/s3bench in the module)")
	flag.BoolVar(&o.quick, "quick", false, "scale everything down (64 MiB objects, short runs): a smoke test")
	flag.BoolVar(&o.baseline, "baseline", true, "measure the raw-disk baseline")
	flag.StringVar(&runExpr, "run", "", "run only the S3 workloads whose names match this `regexp`")
	flag.StringVar(&o.endpoint, "endpoint", "", "drive this S3 endpoint `URL` instead of starting walrus")
	flag.StringVar(&o.access, "access", "", "access key id for -endpoint")
	flag.StringVar(&o.secret, "secret", "", "secret access key for -endpoint")
	flag.StringVar(&o.region, "region", "us-east-1", "region to sign for")
	flag.StringVar(&o.name, "name", "", "name of the server in the report (default: walrus, or the -endpoint host)")
	flag.StringVar(&o.walrus, "walrus", "", "use this walrus `binary` instead of building ./walrus")
	flag.StringVar(&o.profile, "profile", "", "serve walrus from the profiling runner and write a CPU profile per workload to this `directory`")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and raw-disk files after the run")
	flag.DurationVar(&o.settle, "settle", 3*time.Minute, "on ext4 without a journal, wait until this long after the last run deleted its files")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if runExpr != "" {
		re, err := regexp.Compile(runExpr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "s3bench: -run:", err)
			os.Exit(2)
		}
		o.run = re
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o, os.Stdout)
	stop()
	os.Exit(code)
}
