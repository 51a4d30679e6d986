package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPut measures durable puts of 1 KiB bodies into the embedded
// store with SyncAlways: each Put is acknowledged after two fsynced writes
// (the message and its record).
func BenchmarkPut(b *testing.B) {
	q := openQueue(b, b.TempDir())
	m := post("bench", string(bytes.Repeat([]byte{'x'}, 1<<10)))
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Put(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutParallel is BenchmarkPut with several callers at once, as
// concurrent requests on async routes would be.
func BenchmarkPutParallel(b *testing.B) {
	q := openQueue(b, b.TempDir())
	m := post("bench", string(bytes.Repeat([]byte{'x'}, 1<<10)))
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Put(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFsync is the disk's raw rate of 1 KiB appends each followed by
// fsync, in the same kind of directory: the ceiling the store works under.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{'x'}, 1<<10)
	b.SetBytes(1 << 10)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishOnly is the message write of Put alone, without the
// record: what a Put costs beyond one fsynced JetStream publish.
func BenchmarkPublishOnly(b *testing.B) {
	q := openQueue(b, b.TempDir())
	m := post("bench", string(bytes.Repeat([]byte{'x'}, 1<<10)))
	m.ID = "bench"
	data, err := m.encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.js.Publish(b.Context(), q.workSubject(), data); err != nil {
			b.Fatal(err)
		}
	}
}
