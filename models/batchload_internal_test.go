package models

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Misses queued while a load runs are read together in the next one, each
// caller gets its own key's value, and an absent key is not found
// (issue 13 #2).
func TestBatchLoaderCoalescesQueuedMisses(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	b := newBatchLoader(func(_ context.Context, keys []int) (map[int]string, error) {
		mu.Lock()
		batches = append(batches, append([]int(nil), keys...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := map[int]string{}
		for _, k := range keys {
			if k%10 != 7 { // keys ending in 7 do not exist
				out[k] = fmt.Sprint("v", k)
			}
		}
		return out, nil
	})
	b.max = 1 // one load at a time: everything queued meanwhile is one batch
	type res struct {
		v     string
		found bool
	}
	results := make([]res, 50)
	var wg sync.WaitGroup
	get := func(k int) {
		defer wg.Done()
		v, found, err := b.get(context.Background(), k)
		if err != nil {
			t.Error(err)
		}
		results[k] = res{v, found}
	}
	wg.Add(1)
	go get(0)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	for k := 1; k < 50; k++ {
		wg.Add(1)
		go get(k)
	}
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.order) == 49 })
	close(release)
	wg.Wait()
	if len(batches) != 2 || len(batches[1]) != 49 {
		t.Fatalf("batches of sizes %v, want [1 49]", sizes(batches))
	}
	for k, r := range results {
		if want := (res{fmt.Sprint("v", k), true}); k%10 == 7 && r.found || k%10 != 7 && r != want {
			t.Errorf("key %d: %+v", k, r)
		}
	}
}

// A miss never joins a load that had begun before it asked: what it gets
// was read after it asked, so a change committed before a request is never
// hidden from it by a query already in flight.
func TestBatchLoaderNeverJoinsALoadInFlight(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	loads := 0
	b := newBatchLoader(func(_ context.Context, keys []string) (map[string]int, error) {
		mu.Lock()
		loads++
		n := loads
		mu.Unlock()
		if n == 1 {
			<-release
		}
		return map[string]int{keys[0]: n}, nil
	})
	first := make(chan int)
	go func() { v, _, _ := b.get(context.Background(), "k"); first <- v }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return loads == 1 })
	second := make(chan int)
	go func() { v, _, _ := b.get(context.Background(), "k"); second <- v }()
	if v := <-second; v != 2 { // served by a second load while the first still runs
		t.Fatalf("a miss after the load began got the value of load %d", v)
	}
	close(release)
	if v := <-first; v != 1 {
		t.Fatalf("first miss: load %d", v)
	}
}

// A failed load fails every caller of its batch; a caller that gives up
// gets its context's error and the others are unaffected.
func TestBatchLoaderErrorsAndCancel(t *testing.T) {
	boom := errors.New("boom")
	b := newBatchLoader(func(context.Context, []int) (map[int]int, error) { return nil, boom })
	if _, _, err := b.get(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	block := make(chan struct{})
	defer close(block)
	b = newBatchLoader(func(context.Context, []int) (map[int]int, error) { <-block; return nil, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := b.get(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestPaddedSizesArePowersOfTwo(t *testing.T) {
	for n := 1; n <= batchLoadMax; n++ {
		keys := make([]int, n)
		for i := range keys {
			keys[i] = i
		}
		p := padded(keys)
		if len(p)&(len(p)-1) != 0 || len(p) < n || len(p) >= 2*n && n > 1 || p[len(p)-1] != n-1 {
			t.Fatalf("padded(%d keys) has %d", n, len(p))
		}
		for i := 0; i < n; i++ {
			if p[i] != i {
				t.Fatalf("padded changed key %d", i)
			}
		}
	}
}

func sizes(bs [][]int) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = len(b)
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
