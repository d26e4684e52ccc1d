package gateway

import (
	"bytes"
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

	"kefu/internal/bufpool"
)

// Errors of the verify/decrypt step. Signature problems answer 401 and are
// never processed; decrypt problems of a correctly signed request answer 500
// so WeChat retries (they mean a key rotation or misconfiguration to alert
// on, not an attacker).
var (
	errBadSignature = errors.New("signature mismatch")
	errStale        = errors.New("timestamp outside the allowed window")
	errDecrypt      = errors.New("decrypt failed")
	errReceiveID    = errors.New("receive id mismatch")
)

// cipherKey is a decoded EncodingAESKey with the id the platform appends to
// every plaintext (appid for OA, corpid for WeCom and KF).
//
// The hot path does what silenceper's util.AESDecryptMsg, AESEncryptMsg and
// Signature do (WECHAT.md §1.4), byte for byte — crypto_test.go checks it
// against them both ways — but expands the AES key once instead of on every
// request and allocates only the buffers it returns: those three helpers
// were a fifth of the gateway's allocations, and allocation is what the
// garbage collector charges for.
type cipherKey struct {
	key       []byte // 32 bytes, AES-256; the IV is key[:16]
	block     cipher.Block
	receiveID string
}

// wxBlock is the PKCS#7 block size WeChat pads to (not AES's 16).
const wxBlock = 32

// newCipherKey decodes a 43-character EncodingAESKey once at start-up.
func newCipherKey(encodingAESKey, receiveID string) (*cipherKey, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("encoding_aes_key must be 43 characters, got %d", len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("encoding_aes_key is not valid base64 of 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encoding_aes_key: %w", err)
	}
	return &cipherKey{key: key, block: block, receiveID: receiveID}, nil
}

// decrypt opens an Encrypt field and checks the receive id, as WECHAT.md
// §1.4 requires: AES-CBC without a MAC is not authentication, the id check
// plus the msg_signature are.
func (k *cipherKey) decrypt(encrypt string) ([]byte, error) {
	return k.decryptInto(nil, encrypt)
}

// decryptInto is decrypt decoding into buf's memory when it is large
// enough (the OA path passes a pooled buffer: the message it returns
// shares that memory, and nothing parsed from it keeps a reference).
func (k *cipherKey) decryptInto(buf []byte, encrypt string) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(encrypt))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	m, err := base64.StdEncoding.Decode(buf[:n], []byte(encrypt))
	ct := buf[:m]
	if err != nil || len(ct) == 0 {
		return nil, errDecrypt
	}
	msg, id, err := k.open(ct)
	if err != nil {
		return nil, errDecrypt
	}
	if subtle.ConstantTimeCompare(id, []byte(k.receiveID)) != 1 {
		return nil, errReceiveID
	}
	return msg, nil
}

// open decrypts ct in place: random(16) ‖ BE-uint32 len ‖ msg ‖ receive id,
// PKCS#7-padded to 32. Every length comes from the sender, so every slice
// is checked first.
func (k *cipherKey) open(ct []byte) (msg, id []byte, err error) {
	if len(ct) < wxBlock || len(ct)%wxBlock != 0 {
		return nil, nil, errDecrypt
	}
	k.cbcDecrypt(ct)
	pad := int(ct[len(ct)-1])
	if pad < 1 || pad > wxBlock {
		return nil, nil, errDecrypt
	}
	plain := ct[:len(ct)-pad]
	if len(plain) <= 20 {
		return nil, nil, errDecrypt
	}
	n := uint64(binary.BigEndian.Uint32(plain[16:20]))
	if uint64(len(plain)) <= 20+n {
		return nil, nil, errDecrypt
	}
	return plain[20 : 20+n : 20+n], plain[20+n:], nil
}

// appendEncrypt appends the base64 ciphertext of plain to dst; the reply
// path builds it in a pooled buffer instead of a new string per message.
func (k *cipherKey) appendEncrypt(dst, plain []byte) []byte {
	content := 20 + len(plain) + len(k.receiveID)
	pad := wxBlock - content%wxBlock
	bp := sealBufs.Get()
	buf := append(*bp, make([]byte, content+pad)...)
	_, _ = rand.Read(buf[:16])
	binary.BigEndian.PutUint32(buf[16:20], uint32(len(plain)))
	copy(buf[20:], plain)
	copy(buf[20+len(plain):], k.receiveID)
	for i := content; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	k.cbcEncrypt(buf)
	dst = base64.StdEncoding.AppendEncode(dst, buf)
	sealBufs.Put(bp, buf)
	return dst
}

// sealBufs holds the plaintext+padding buffers replies are encrypted in.
var sealBufs = bufpool.New(2048, 64<<10)

// cbcEncrypt and cbcDecrypt are AES-CBC in place with IV = key[:16]
// (WECHAT.md §1.4). They do what cipher.NewCBCEncrypter/Decrypter do but
// without allocating a mode object per message; len(b) is a multiple of 16.
func (k *cipherKey) cbcEncrypt(b []byte) {
	var prev [aes.BlockSize]byte
	copy(prev[:], k.key[:aes.BlockSize])
	for i := 0; i < len(b); i += aes.BlockSize {
		blk := b[i : i+aes.BlockSize]
		subtle.XORBytes(blk, blk, prev[:])
		k.block.Encrypt(blk, blk)
		copy(prev[:], blk)
	}
}

func (k *cipherKey) cbcDecrypt(b []byte) {
	var prev, cur [aes.BlockSize]byte
	copy(prev[:], k.key[:aes.BlockSize])
	for i := 0; i < len(b); i += aes.BlockSize {
		blk := b[i : i+aes.BlockSize]
		copy(cur[:], blk)
		k.block.Decrypt(blk, blk)
		subtle.XORBytes(blk, blk, prev[:])
		prev = cur
	}
}

// signatureOK compares want with sha1(sort(parts)) in constant time.
func signatureOK(want string, parts ...string) bool {
	if len(want) != 40 {
		return false
	}
	var got [40]byte
	signatureHex(&got, parts)
	return subtle.ConstantTimeCompare(got[:], []byte(want)) == 1
}

// appendSignature appends the hex signature of a reply: sha1 over the
// sorted token, timestamp, nonce and the base64 ciphertext (held as bytes
// in the reply buffer, so it is not copied into a string first).
func appendSignature(dst []byte, token, timestamp, nonce string, enc []byte) []byte {
	parts := [4][]byte{[]byte(token), []byte(timestamp), []byte(nonce), enc}
	ps := parts[:]
	for i := 1; i < len(ps); i++ { // insertion sort of four parts
		for j := i; j > 0 && bytes.Compare(ps[j-1], ps[j]) > 0; j-- {
			ps[j-1], ps[j] = ps[j], ps[j-1]
		}
	}
	h := sha1.New()
	for _, p := range ps {
		h.Write(p)
	}
	var sum [sha1.Size]byte
	return hex.AppendEncode(dst, h.Sum(sum[:0]))
}

// signatureHex writes the lowercase hex of sha1(concat(sort(parts))) — the
// WeChat signature — without allocating for the usual 3–4 short parts.
func signatureHex(out *[40]byte, parts []string) {
	var sorted [4]string
	ps := sorted[:0]
	if len(parts) > len(sorted) {
		ps = make([]string, 0, len(parts))
	}
	for _, p := range parts { // insertion sort: at most four strings
		i := len(ps)
		ps = append(ps, p)
		for ; i > 0 && ps[i-1] > p; i-- {
			ps[i] = ps[i-1]
		}
		ps[i] = p
	}
	bp := sigBufs.Get()
	b := *bp
	for _, p := range ps {
		b = append(b, p...)
	}
	sum := sha1.Sum(b)
	hex.Encode(out[:], sum[:])
	sigBufs.Put(bp, b)
}

// sigBufs holds the buffers signatures are hashed from (sha1.Sum makes a
// stack buffer escape, so they are pooled instead).
var sigBufs = bufpool.New(512, 4096)
