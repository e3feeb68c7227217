package plugin

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

func TestKnownKeepsNamesOnDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".tmp-x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := OpenKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"db", "logs", "old"} {
		if err := k.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Forget("logs"); err != nil {
		t.Fatal(err)
	}
	mark := k.Mark()
	if err := k.Add("new"); err != nil { // a Create while a List reads
		t.Fatal(err)
	}
	// The list read after mark: db and web; old was removed elsewhere.
	if err := k.Sync(mark, []string{"db", "web"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"db", "new", "web"}
	again, err := OpenKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*Known{k, again} {
		names := got.Names()
		sort.Strings(names)
		if !slices.Equal(names, want) {
			t.Fatalf("known %v, want %v (a name not a volume's is never one)", names, want)
		}
	}
	// The same set again changes nothing; as many names but another set
	// is no shortcut: web goes, x comes.
	if err := k.Sync(k.Mark(), []string{"web", "new", "db"}); err != nil {
		t.Fatal(err)
	}
	if err := k.Sync(k.Mark(), []string{"db", "new", "x"}); err != nil {
		t.Fatal(err)
	}
	if names := k.Names(); !slices.Equal(slices.Sorted(slices.Values(names)), []string{"db", "new", "x"}) {
		t.Fatalf("known %v after a list of as many other names, want db new x", names)
	}
	if !again.Has("db") || again.Has("old") || again.Has(".tmp-x") {
		t.Fatalf("Has: db %v, old %v, .tmp-x %v", again.Has("db"), again.Has("old"), again.Has(".tmp-x"))
	}
	if _, err := OpenKnown(filepath.Join(dir, "db")); err == nil {
		t.Fatal("OpenKnown of a file, not a folder, succeeded")
	}
}
