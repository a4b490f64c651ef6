package main

import (
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// The store detects the shared tier by interface; these break the build if an
// adapter stops satisfying what the store looks for.
var (
	_ querycache.Backend       = namespaced{}
	_ querycache.SharedBackend = sharedNamespaced{}
)

func TestAdaptersSatisfyStoreInterfaces(t *testing.T) {
	var rc querycache.Backend = namespaced{}
	if _, shared := rc.(querycache.SharedBackend); shared {
		t.Fatal("the memory-only adapter must not claim to be shared across replicas")
	}
}
