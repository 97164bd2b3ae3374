// Command s3bench measures walrus, the S3-compatible object store, against
// the raw disk it stores its data on.
//
//	go run ./bench/s3bench [-out docs/benchmarks.md] [-quick] [-dir DIR] [-settle 3m]
//	go run ./bench/s3bench -endpoint URL -access KEY -secret KEY [-name minio]
//	go run ./bench/s3bench -profile DIR [-run REGEXP] [-baseline=false]
//
// In one run, on one filesystem, it measures the raw-disk baseline
// (sequential write of a large file with fsync, sequential read of it from
// the page cache, and small fsynced files written by 16 goroutines), starts
// walrus as a separate process with a fresh data directory under the same
// work directory, and drives it with a plain HTTP client that signs with
// pkg/sigv4 (UNSIGNED-PAYLOAD): PUT and GET throughput of 1 MiB and 256 MiB
// objects, and PUT, GET, HEAD and ListObjectsV2 rates over 4 KiB objects
// with 16 clients. Bodies are generated and discarded on the fly, so no
// object is ever held in memory.
//
// The work directory defaults to var/s3bench in the repository. On ext4
// without a journal a run starts only -settle after the previous one
// deleted its files: for a while after inodes are freed, creating files
// there costs several times the CPU, which would be charged to whichever
// run comes next.
//
// With -endpoint it drives another S3 server with the same client instead
// of starting walrus, for side-by-side numbers (MinIO, say).
//
// With -out it rewrites the markdown report: the newest run goes under
// "Latest run", the run that was there moves to the top of "Previous runs",
// and text a person added between the introduction and "Latest run" stays.
//
// With -profile it serves walrus from a small in-process runner
// (walrusprof/main.go, built with -overlay because Go lets only code below
// walrus/ import walrus/internal) and writes one CPU profile of the server
// per workload to DIR, for `go tool pprof -top DIR/<workload>.pprof`.
package main
