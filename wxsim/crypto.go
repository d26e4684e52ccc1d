package wxsim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The crypto here is written from the protocol description (WECHAT.md §1.4)
// with the standard library only. The gateway uses silenceper's util for the
// same job; keeping the two implementations independent means a bug in one
// shows up as a failed round trip instead of cancelling out.

// pkcs7Block is WeChat's PKCS#7 block size. It is 32 (the key size), not the
// AES block size of 16, so pad values run 1..32.
const pkcs7Block = 32

// Errors returned by the crypto helpers; wrapped with detail, test with errors.Is.
var (
	// ErrBadAESKey reports an EncodingAESKey that is not 43 base64 chars decoding to 32 bytes.
	ErrBadAESKey = errors.New("wxsim: invalid EncodingAESKey")
	// ErrBadCiphertext reports an Encrypt value that is not valid base64/AES/PKCS#7 or
	// whose inner framing (length prefix) is inconsistent.
	ErrBadCiphertext = errors.New("wxsim: invalid ciphertext")
	// ErrReceiveID reports a decrypted message whose trailing receive id (appid or
	// corpid) is not the expected one.
	ErrReceiveID = errors.New("wxsim: receive id mismatch")
	// ErrSignature reports a signature or msg_signature that does not match.
	ErrSignature = errors.New("wxsim: signature mismatch")
)

// Signature returns WeChat's signature over parts: sort them
// lexicographically, concatenate, SHA-1, lowercase hex. It is used for both
// the 3-part OA `signature` and the 4-part `msg_signature`. Unlike
// silenceper's util.Signature it does not reorder the caller's slice.
func Signature(parts ...string) string {
	s := slices.Clone(parts)
	slices.Sort(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(sum[:])
}

// SignatureEqual compares two hex signatures in constant time, as a receiver
// should, so the simulator does not model a timing oracle.
func SignatureEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// DecodeAESKey turns a 43-character EncodingAESKey into the 32-byte AES key
// (base64 of key+"=").
func DecodeAESKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("%w: length %d, want 43", ErrBadAESKey, len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAESKey, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: decodes to %d bytes", ErrBadAESKey, len(key))
	}
	return key, nil
}

// GenerateEncodingAESKey returns a fresh random 43-character EncodingAESKey,
// the way the admin console generates one.
func GenerateEncodingAESKey() string {
	var k [32]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])[:43]
}

// Crypter encrypts, decrypts and signs messages for one callback endpoint
// (token + EncodingAESKey + receive id). The receive id is the AppID for an
// Official Account and the CorpID for WeCom apps and WeChat KF. A Crypter is
// immutable and safe for concurrent use.
type Crypter struct {
	token     string
	key       []byte
	receiveID string
}

// NewCrypter validates the EncodingAESKey and returns a Crypter.
func NewCrypter(token, encodingAESKey, receiveID string) (*Crypter, error) {
	key, err := DecodeAESKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	return &Crypter{token: token, key: key, receiveID: receiveID}, nil
}

// Token returns the callback token the Crypter signs with.
func (c *Crypter) Token() string { return c.token }

// ReceiveID returns the appid/corpid the Crypter appends and expects.
func (c *Crypter) ReceiveID() string { return c.receiveID }

// Encrypt returns base64(AES-256-CBC(random16 ‖ BE uint32 len ‖ msg ‖ receiveID))
// with a fresh random prefix.
func (c *Crypter) Encrypt(msg []byte) string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return c.EncryptWith(r[:], c.receiveID, msg)
}

// EncryptWith encrypts msg with an explicit 16-byte random prefix and receive
// id. Tests use it for deterministic output and for negative cases (a
// ciphertext carrying someone else's appid).
func (c *Crypter) EncryptWith(random []byte, receiveID string, msg []byte) string {
	n := 16 + 4 + len(msg) + len(receiveID)
	pad := pkcs7Block - n%pkcs7Block // 1..32; a full block when aligned
	buf := make([]byte, n+pad)
	copy(buf[:16], random)
	binary.BigEndian.PutUint32(buf[16:20], uint32(len(msg)))
	copy(buf[20:], msg)
	copy(buf[20+len(msg):], receiveID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	block, err := aes.NewCipher(c.key)
	if err != nil {
		panic(err) // key length checked in NewCrypter
	}
	cipher.NewCBCEncrypter(block, c.key[:16]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// Decrypt decrypts an Encrypt value and checks that the trailing receive id
// is the Crypter's own; per the spec a receiver must reject anything else.
func (c *Crypter) Decrypt(encrypt string) ([]byte, error) {
	msg, id, err := c.DecryptAny(encrypt)
	if err != nil {
		return nil, err
	}
	if id != c.receiveID {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrReceiveID, id, c.receiveID)
	}
	return msg, nil
}

// DecryptAny decrypts an Encrypt value and returns the message and whatever
// receive id it carries, without judging the id. Padding is checked strictly
// (every pad byte equal, value 1..32) because a lenient decryptor would
// hide an encryptor that pads to 16.
func (c *Crypter) DecryptAny(encrypt string) (msg []byte, receiveID string, err error) {
	raw, err := base64.StdEncoding.DecodeString(encrypt)
	if err != nil {
		return nil, "", fmt.Errorf("%w: base64: %v", ErrBadCiphertext, err)
	}
	if len(raw) < pkcs7Block || len(raw)%pkcs7Block != 0 {
		return nil, "", fmt.Errorf("%w: length %d is not a positive multiple of %d", ErrBadCiphertext, len(raw), pkcs7Block)
	}
	block, err := aes.NewCipher(c.key)
	if err != nil {
		panic(err)
	}
	buf := make([]byte, len(raw))
	cipher.NewCBCDecrypter(block, c.key[:16]).CryptBlocks(buf, raw)
	pad := int(buf[len(buf)-1])
	if pad < 1 || pad > pkcs7Block {
		return nil, "", fmt.Errorf("%w: pad value %d", ErrBadCiphertext, pad)
	}
	for _, b := range buf[len(buf)-pad:] {
		if int(b) != pad {
			return nil, "", fmt.Errorf("%w: inconsistent PKCS#7 padding", ErrBadCiphertext)
		}
	}
	buf = buf[:len(buf)-pad]
	if len(buf) < 20 {
		return nil, "", fmt.Errorf("%w: plaintext too short (%d bytes)", ErrBadCiphertext, len(buf))
	}
	l := binary.BigEndian.Uint32(buf[16:20])
	if uint64(l) > uint64(len(buf)-20) {
		return nil, "", fmt.Errorf("%w: message length %d exceeds plaintext", ErrBadCiphertext, l)
	}
	end := 20 + int(l)
	return buf[20:end:end], string(buf[end:]), nil
}

// Sign returns msg_signature = sha1(sort(token, timestamp, nonce, encrypt)).
func (c *Crypter) Sign(timestamp, nonce, encrypt string) string {
	return Signature(c.token, timestamp, nonce, encrypt)
}

// Verify checks a msg_signature in constant time.
func (c *Crypter) Verify(msgSignature, timestamp, nonce, encrypt string) error {
	if !SignatureEqual(msgSignature, c.Sign(timestamp, nonce, encrypt)) {
		return fmt.Errorf("%w: msg_signature", ErrSignature)
	}
	return nil
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// newNonce returns a random numeric nonce like the ones WeChat sends.
func newNonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d", uint64(binary.BigEndian.Uint32(b[:]))%900000000+100000000)
}
