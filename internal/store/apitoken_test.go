package store_test

import (
	"sync"
	"testing"

	"github.com/relocvol/relocvol/internal/testenv"
)

// Hosts starting at once agree on one pair of tokens, made once.
func TestAPITokensMadeOnce(t *testing.T) {
	st, ctx := testenv.Store(t, "/t")
	var wg sync.WaitGroup
	got := make([][2]string, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full, read, err := st.APITokens(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = [2]string{full, read}
		}()
	}
	wg.Wait()
	for _, g := range got[1:] {
		if g != got[0] {
			t.Fatalf("hosts got different tokens: %v", got)
		}
	}
	if len(got[0][0]) != 64 || len(got[0][1]) != 64 || got[0][0] == got[0][1] {
		t.Fatalf("tokens %v: want two different 64-hex-digit tokens", got[0])
	}
}
