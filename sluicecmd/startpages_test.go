package sluicecmd

import (
	"slices"
	"testing"
)

// Only the executable's read-only private mappings without pages of their
// own are dropped: not its writable data, not another file's, not a
// mapping a debugger or a uprobe wrote a private copy into.
func TestReadOnlyExecutableMappings(t *testing.T) {
	smaps := `00400000-00b75000 r-xp 00000000 fe:00 100 /usr/bin/sluice
Size:               7636 kB
Rss:                6932 kB
Anonymous:             0 kB
00b75000-01345000 r--p 00775000 fe:00 100 /usr/bin/sluice
Rss:                6784 kB
Anonymous:             0 kB
01345000-013de000 rw-p 00f45000 fe:00 100 /usr/bin/sluice
Anonymous:           108 kB
013de000-03423000 rw-p 00000000 00:00 0
Anonymous:           112 kB
02000000-02001000 r-xp 00000000 fe:00 100 /usr/bin/sluice
Anonymous:             4 kB
7f00000000-7f00001000 r--p 00000000 fe:00 200 /usr/lib/libc.so.6
Anonymous:             0 kB
7f00002000-7f00003000 r--s 00000000 fe:00 100 /usr/bin/sluice
Anonymous:             0 kB
7f00004000-7f00005000 r--p 00000000 fe:00 101 /usr/bin/sluice-other
Anonymous:             0 kB
`
	got, err := readOnlyExecutableMappings([]byte(smaps), "/usr/bin/sluice")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uintptr{{0x400000, 0xb75000}, {0xb75000, 0x1345000}}
	if !slices.Equal(got, want) {
		t.Errorf("got %#x, want %#x", got, want)
	}
	if _, err := readOnlyExecutableMappings([]byte("zz-00400000 r-xp 00000000 fe:00 100 /usr/bin/sluice\n"), "/usr/bin/sluice"); err == nil {
		t.Error("a mapping whose range does not parse: no error")
	}
}
