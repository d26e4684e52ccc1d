package bot

import (
	"testing"

	"kefu/bot/textnorm"
)

func TestChoice(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		isOK bool
	}{
		{"1", 1, true}, {"２", 2, true}, {"第2个", 2, true}, {"3.", 3, true}, {"第三个", 3, true},
		{"0", 0, true}, {"都不是", 0, true}, {"是的", 1, true}, {" 2 ", 2, true},
		{"12", 0, false}, {"退货", 0, false}, {"", 0, false}, {"-1", 0, false},
	}
	for _, c := range cases {
		n, ok := choice(textnorm.Fold(c.in))
		if ok != c.isOK || (ok && n != c.n) {
			t.Errorf("choice(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.isOK)
		}
	}
}

func FuzzChoice(f *testing.F) {
	for _, s := range []string{"1", "第2个", "都不是", "９", "", "第", "个"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := choice(textnorm.Fold(s))
		// A choice is always a menu position 0..9: anything else would index
		// outside the pending options.
		if ok && (n < 0 || n > 9) {
			t.Fatalf("choice(%q) = %d", s, n)
		}
	})
}
