//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// crashObject is what the crash test knows of an object it sent.
type crashObject struct {
	size      int
	sha256    string
	multipart bool
}

// crashLedger records every upload attempted (before sending) and every
// upload acknowledged (after a 200).
type crashLedger struct {
	mu        sync.Mutex
	attempted map[string]crashObject
	acked     map[string]bool
}

func (l *crashLedger) attempt(key string, o crashObject) {
	l.mu.Lock()
	l.attempted[key] = o
	l.mu.Unlock()
}

func (l *crashLedger) ack(key string) {
	l.mu.Lock()
	l.acked[key] = true
	l.mu.Unlock()
}

const (
	crashWorkers  = 16
	crashPartSize = 5 << 20
	crashMinAcks  = 8 // acknowledged uploads a round waits for before the kill
	// crashLargeSize is big enough for walrus to write a single PUT as
	// several segment files, two at a time.
	crashLargeSize = 40<<20 + 17
)

// TestCrash kills walrus with SIGKILL while uploads run, restarts it on the
// same data directory, and checks that every acknowledged object survived
// whole and that no object is torn.
func TestCrash(t *testing.T) {
	w := startWalrus(t)
	ctx := t.Context()
	const bucket = "crash"
	if _, err := newSDKClient(w.endpoint, w.a).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	ledger := &crashLedger{attempted: map[string]crashObject{}, acked: map[string]bool{}}

	// Different delays put the kill at different points of the uploads.
	for round, delay := range []time.Duration{1500 * time.Millisecond, 600 * time.Millisecond, 2400 * time.Millisecond} {
		ok := t.Run(fmt.Sprintf("kill9 round %d", round+1), func(t *testing.T) {
			uploadUntilKilled(t, w, bucket, round, delay, ledger)
			w.restart()
			verifyAfterCrash(t, w, bucket, ledger)
		})
		if !ok {
			return
		}
	}

	t.Run("graceful restart", func(t *testing.T) {
		w.restart()
		verifyAfterCrash(t, w, bucket, ledger)
		c := newSDKClient(w.endpoint, w.a)
		data := randomBytes(99, 12345)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("after/all"), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatalf("PutObject after the restarts: %v", err)
		}
		if got := getObject(ctx, t, c, bucket, "after/all"); !bytes.Equal(got, data) {
			t.Errorf("GetObject after the restarts: sha256 %s, want %s", sha256Hex(got), sha256Hex(data))
		}
	})
}

// crashClient is an SDK client that sends UNSIGNED-PAYLOAD, no checksums,
// and never retries: a request either got its 200 or it did not.
func crashClient(w *walrus) *s3.Client {
	return newSDKClient(w.endpoint, w.a, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
}

// uploadUntilKilled runs crashWorkers uploaders and kills walrus with
// SIGKILL after delay, once at least crashMinAcks uploads succeeded.
func uploadUntilKilled(t *testing.T, w *walrus, bucket string, round int, delay time.Duration, ledger *crashLedger) {
	c := crashClient(w)
	up := manager.NewUploader(c, func(u *manager.Uploader) {
		u.PartSize = crashPartSize
		u.Concurrency = 2
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var killed atomic.Bool
	var acks atomic.Int64
	enough := make(chan struct{})
	var enoughOnce sync.Once
	var wg sync.WaitGroup
	for g := range crashWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("r%d/g%02d/%04d", round+1, g, i)
				// Sizes spread evenly in log scale over 1 KiB..8 MiB, and
				// from the first worker every other upload one PUT of
				// crashLargeSize, which walrus writes as segment files.
				size := int(math.Exp(math.Log(1<<10) + rng.Float64()*(math.Log(8<<20)-math.Log(1<<10))))
				large := g == 0 && i%2 == 1
				if large {
					size = crashLargeSize
				}
				data := randomBytes(rng.Uint64(), size)
				o := crashObject{size: size, sha256: sha256Hex(data), multipart: !large && size > crashPartSize && rng.IntN(2) == 0}
				ledger.attempt(key, o)
				in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}
				var err error
				if o.multipart {
					_, err = up.Upload(ctx, in)
				} else {
					_, err = c.PutObject(ctx, in)
				}
				if err != nil {
					if !killed.Load() {
						t.Errorf("upload %s (%d bytes, multipart %v) before the kill: %v", key, size, o.multipart, err)
					}
					return
				}
				ledger.ack(key)
				if acks.Add(1) >= crashMinAcks {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		})
	}

	<-time.After(delay)
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Errorf("fewer than %d uploads acknowledged in 2 minutes", crashMinAcks)
	}
	killed.Store(true)
	w.kill9()
	cancel()
	wg.Wait()
	t.Logf("round %d: killed after %v with %d uploads acknowledged", round+1, delay, acks.Load())
}

// verifyAfterCrash checks the restarted walrus against the ledger.
func verifyAfterCrash(t *testing.T, w *walrus, bucket string, ledger *crashLedger) {
	t.Helper()
	ctx := t.Context()

	// Recovery runs before walrus listens: nothing may be left in tmp/.
	entries, err := os.ReadDir(filepath.Join(w.dataDir, "tmp"))
	if err != nil {
		t.Fatalf("read the data dir's tmp/: %v", err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("after restart, tmp/ holds %d leftovers: %s", len(names), strings.Join(names, " "))
	}

	c := newSDKClient(w.endpoint, w.a)
	type listed struct {
		size int64
		etag string
	}
	objects := map[string]listed{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range page.Contents {
			objects[aws.ToString(o.Key)] = listed{size: aws.ToInt64(o.Size), etag: unquote(aws.ToString(o.ETag))}
		}
	}

	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for key := range ledger.acked {
		if _, ok := objects[key]; !ok {
			t.Errorf("acknowledged object %s (%d bytes) is not listed after the restart", key, ledger.attempted[key].size)
		}
	}
	for key, l := range objects {
		if key == "after/all" {
			continue
		}
		want, ok := ledger.attempted[key]
		if !ok {
			t.Errorf("listed object %s was never uploaded", key)
			continue
		}
		data := getObject(ctx, t, c, bucket, key)
		switch {
		case int64(len(data)) != l.size:
			t.Errorf("%s: listed with %d bytes, GET gives %d (acknowledged %v)", key, l.size, len(data), ledger.acked[key])
		case l.size != int64(want.size):
			t.Errorf("%s: listed with %d bytes, uploaded %d: torn (acknowledged %v)", key, l.size, want.size, ledger.acked[key])
		case sha256Hex(data) != want.sha256:
			t.Errorf("%s: content sha256 %s, uploaded %s (acknowledged %v)", key, sha256Hex(data), want.sha256, ledger.acked[key])
		}
		wantETag := md5Hex(data)
		if strings.Contains(l.etag, "-") {
			wantETag = multipartETag(data, crashPartSize)
		}
		if l.etag != wantETag {
			t.Errorf("%s: listed ETag %s, content gives %s (multipart upload %v)", key, l.etag, wantETag, want.multipart)
		}
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var large, largeAcked int
	for key, o := range ledger.attempted {
		if o.size == crashLargeSize {
			large++
			if ledger.acked[key] {
				largeAcked++
			}
		}
	}
	t.Logf("after restart: %d objects listed, %d acknowledged, %d attempted (%d of %d segmented PUTs acknowledged), %d multipart uploads unfinished",
		len(objects), len(ledger.acked), len(ledger.attempted), largeAcked, large, len(ups.Uploads))
}
