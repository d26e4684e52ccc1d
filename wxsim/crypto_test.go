package wxsim

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/util"
)

func must(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCryptoInteropSilenceper proves the independent implementation agrees
// with silenceper's util in both directions, for message lengths around
// every padding boundary (pad 1..32).
func TestCryptoInteropSilenceper(t *testing.T) {
	cr, err := NewCrypter(tToken, tAESKey, tAppID)
	if err != nil {
		t.Fatal(err)
	}
	random := []byte("RANDOM0123456789")
	for n := 0; n < 80; n++ {
		msg := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		ours := cr.EncryptWith(random, tAppID, msg)
		theirs, err := util.EncryptMsg(random, msg, tAppID, tAESKey)
		if err != nil {
			t.Fatal(err)
		}
		if ours != string(theirs) {
			t.Fatalf("len %d: ciphertexts differ", n)
		}
		if n == 0 {
			continue // silenceper rejects an empty message on decrypt; ours allows it
		}
		_, plain, err := util.DecryptMsg(tAppID, cr.Encrypt(msg), tAESKey)
		if err != nil || !bytes.Equal(plain, msg) {
			t.Fatalf("len %d: silenceper could not decrypt ours: %v", n, err)
		}
		got, err := cr.Decrypt(string(theirs))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("len %d: we could not decrypt silenceper's: %v", n, err)
		}
	}
	for _, parts := range [][]string{{tToken, "1700000000", "n"}, {tToken, "1700000000", "n", "ENC+/="}} {
		if Signature(parts...) != util.Signature(append([]string(nil), parts...)...) {
			t.Fatalf("signature differs for %v", parts)
		}
	}
	in := []string{"b", "a"}
	Signature(in...)
	if in[0] != "b" {
		t.Fatal("Signature reordered its argument")
	}
}

func TestCryptoRejects(t *testing.T) {
	cr, _ := NewCrypter(tToken, tAESKey, tAppID)
	other, _ := NewCrypter(tToken, GenerateEncodingAESKey(), tAppID)
	enc := cr.Encrypt([]byte("<xml/>"))
	if _, err := cr.Decrypt(cr.EncryptWith(make([]byte, 16), "wxOther", []byte("x"))); !errors.Is(err, ErrReceiveID) {
		t.Fatalf("receive id: %v", err)
	}
	if _, err := other.Decrypt(enc); !errors.Is(err, ErrBadCiphertext) && !errors.Is(err, ErrReceiveID) {
		t.Fatalf("wrong key: %v", err)
	}
	for _, bad := range []string{"", "!!!", enc[:len(enc)-8], strings.Repeat("A", 44)} {
		if _, err := cr.Decrypt(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if _, err := NewCrypter(tToken, "short", tAppID); !errors.Is(err, ErrBadAESKey) {
		t.Fatal(err)
	}
	if err := cr.Verify(cr.Sign("1", "2", enc), "1", "2", enc); err != nil {
		t.Fatal(err)
	}
	if err := cr.Verify(cr.Sign("1", "2", enc), "1", "3", enc); !errors.Is(err, ErrSignature) {
		t.Fatal(err)
	}
	if len(GenerateEncodingAESKey()) != 43 {
		t.Fatal("key length")
	}
}
