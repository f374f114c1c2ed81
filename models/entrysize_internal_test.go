package models

import (
	"testing"
	"unsafe"
)

// The cache bound is in entries, so memory at the bound is entries times
// their size (issue 13 #3: RSS < 300 MB after 250,000 distinct keys): a
// verified key's entry holds no empty old-secret slots and a tree's keys
// only the fields the REST list shows. These sizes fail the test if a
// change makes every entry bigger.
func TestCacheEntrySizes(t *testing.T) {
	if n := unsafe.Sizeof(cachedKey{}); n > 128 {
		t.Errorf("cachedKey is %d bytes, want at most 128", n)
	}
	if n := unsafe.Sizeof(treeKey{}); n > 96 {
		t.Errorf("treeKey is %d bytes, want at most 96", n)
	}
	if n := unsafe.Sizeof(treeEntry{}); n > 64 {
		t.Errorf("treeEntry is %d bytes, want at most 64", n)
	}
}
