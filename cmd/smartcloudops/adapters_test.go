package main

import (
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// The store detects the shared tier by interface; these break the build if an
// adapter stops satisfying what the store looks for.
var (
	_ store.ResultCache = namespaced{}
	_ store.SharedCache = sharedNamespaced{}
)

func TestAdaptersSatisfyStoreInterfaces(t *testing.T) {
	var rc store.ResultCache = namespaced{}
	if _, shared := rc.(store.SharedCache); shared {
		t.Fatal("the memory-only adapter must not claim to be shared across replicas")
	}
}
