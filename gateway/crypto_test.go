package gateway

import (
	"bytes"
	"crypto/cipher"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/util"
)

const cryptoTestKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

// The hot-path crypto does what silenceper's util does, byte for byte:
// what we seal, silenceper opens; what silenceper seals, we open; the
// signatures are equal.
func TestCrypto_MatchesSilenceper(t *testing.T) {
	k, err := newCipherKey(cryptoTestKey, "wx1234567890abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 11, 12, 31, 32, 33, 100, 1000, 4096} {
		plain := bytes.Repeat([]byte("微"), n)
		// ours → silenceper
		_, msg, id, err := util.AESDecryptMsg(mustB64(t, k.encrypt(plain)), k.key)
		if err != nil || !bytes.Equal(msg, plain) || string(id) != k.receiveID {
			t.Fatalf("n=%d: silenceper opened %q/%q, %v", n, msg, id, err)
		}
		// silenceper → ours
		sealed := base64.StdEncoding.EncodeToString(util.AESEncryptMsg([]byte("0123456789abcdef"), plain, k.receiveID, k.key))
		got, err := k.decrypt(sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: we opened %q, %v", n, got, err)
		}
		// Into a reused buffer holding garbage (the OA path's pooled one),
		// and into one too small, which is replaced.
		for _, buf := range [][]byte{bytes.Repeat([]byte{0xAA}, 8192), make([]byte, 3)} {
			got, err := k.decryptInto(buf, sealed)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d, buffer of %d: we opened %q, %v", n, len(buf), got, err)
			}
		}
	}
	// Another receive id is refused.
	other := base64.StdEncoding.EncodeToString(util.AESEncryptMsg([]byte("0123456789abcdef"), []byte("<xml/>"), "wxOTHER", k.key))
	if _, err := k.decrypt(other); err != errReceiveID {
		t.Fatalf("other receive id: %v", err)
	}
	for _, parts := range [][]string{
		{"token", "1700000000", "nonce"},
		{"token", "1700000000", "nonce", "ENCRYPTED+/="},
		{"b", "a", "c", "a", "z"},
		{strings.Repeat("x", 600), "1", "2"},
		{},
	} {
		want := util.Signature(append([]string(nil), parts...)...)
		if got := signatureOf(parts...); got != want {
			t.Fatalf("signature(%q) = %s, silenceper %s", parts, got, want)
		}
		if !signatureOK(want, parts...) || signatureOK(strings.Repeat("0", 40), parts...) {
			t.Fatalf("signatureOK(%q) wrong", parts)
		}
	}
	// The reply signer hashes the ciphertext from the reply buffer.
	for _, p := range [][4]string{
		{"token", "1700000000", "nonce", "ENCRYPTED+/="},
		{"zz", "1700000000", "a", "0000"},
		{"", "", "", ""},
	} {
		want := util.Signature(p[0], p[1], p[2], p[3])
		if got := string(appendSignature([]byte("x"), p[0], p[1], p[2], []byte(p[3]))); got != "x"+want {
			t.Fatalf("appendSignature(%q) = %s, silenceper %s", p, got, want)
		}
	}
}

// A reply's CDATA cannot be broken out of: every "]]>" is split, and the
// section reads back as the original text.
func TestAppendCDATA(t *testing.T) {
	for in, want := range map[string]string{
		"":         "<![CDATA[]]>",
		"plain 文本": "<![CDATA[plain 文本]]>",
		"a]]>b":    "<![CDATA[a]]]]><![CDATA[>b]]>",
		"]]>]]>":   "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>",
		"x]]":      "<![CDATA[x]]]]>",
	} {
		if got := string(appendCDATA(nil, in)); got != want {
			t.Errorf("appendCDATA(%q) = %q, want %q", in, got, want)
		}
	}
}

// Malformed ciphertexts are errors, never panics or out-of-range slices:
// wrong lengths, bad padding, a message length past the end.
func TestCrypto_RejectsMalformedCiphertext(t *testing.T) {
	k, _ := newCipherKey(cryptoTestKey, "wx1234567890abcdef")
	// seal encrypts a hand-built frame with the key, bypassing the framing
	// code under test.
	seal := func(frame []byte) string {
		if len(frame)%32 != 0 {
			t.Fatalf("frame of %d bytes", len(frame))
		}
		out := append([]byte(nil), frame...)
		cipher.NewCBCEncrypter(k.block, k.key[:16]).CryptBlocks(out, out)
		return base64.StdEncoding.EncodeToString(out)
	}
	frame := func(random int, msgLen uint32, body string, pad byte, padLen int) []byte {
		b := bytes.Repeat([]byte{'r'}, random)
		b = append(b, byte(msgLen>>24), byte(msgLen>>16), byte(msgLen>>8), byte(msgLen))
		b = append(b, body...)
		for i := 0; i < padLen; i++ {
			b = append(b, pad)
		}
		return b
	}
	cases := map[string]string{
		"not base64":        "%%%",
		"empty":             "",
		"short":             base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")),
		"not block aligned": base64.StdEncoding.EncodeToString(make([]byte, 48)),
		"pad zero":          seal(frame(16, 4, "abcdwx1234567890abcdef", 0, 22)),
		"pad too big":       seal(frame(16, 4, "abcdwx1234567890abcdef", 33, 22)),
		"length past end":   seal(frame(16, 1<<30, "abcdwx1234567890abcdef", 22, 22)),
		"no receive id":     seal(frame(16, 22, "abcdwx1234567890abcdef", 22, 22)),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if msg, err := k.decrypt(in); err == nil {
				t.Fatalf("accepted: %q", msg)
			}
		})
	}
	// The well-formed frame of the same shape is accepted.
	if msg, err := k.decrypt(seal(frame(16, 4, "abcdwx1234567890abcdef", 22, 22))); err != nil || string(msg) != "abcd" {
		t.Fatalf("well-formed: %q %v", msg, err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Test helpers: the reply path appends into pooled buffers; these return
// strings for comparisons.

// encrypt seals plain as a reply for the platform, as a string.
func (k *cipherKey) encrypt(plain []byte) string {
	return string(k.appendEncrypt(nil, plain))
}

// signatureOf is the WeChat signature of parts, as a string.
func signatureOf(parts ...string) string {
	var out [40]byte
	signatureHex(&out, parts)
	return string(out[:])
}
