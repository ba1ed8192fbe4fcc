package tokens

import (
	"context"
	"testing"
	"time"
)

// benchRing is a key ring on a real Badger store with real time.
func benchRing(b *testing.B, alg string) *KeyRing {
	b.Helper()
	return newRing(b, openStore(b), testConfig(alg))
}

// BenchmarkVerifyFirstUse measures the full uncached path: signature
// verification, claims parsing and checks, and the cache insertion. The
// verifier never has the token cached: the pre-minted tokens are used in
// turn, and the cache is replaced whenever the turn comes round again.
func BenchmarkVerifyFirstUse(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			ctx := context.Background()
			kr := benchRing(b, alg)
			toks := make([]string, 256)
			for i := range toks {
				toks[i] = mint(b, kr, time.Hour)
			}
			v := NewVerifier(kr, testIssuer)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				j := i % len(toks)
				if j == 0 {
					v.cache = newVerifiedCache(8192) // once per 256 verifications
				}
				if _, err := v.Verify(ctx, toks[j], testAudience); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyRepeated measures a token verified again and again, as a
// client's requests carry it: the cached path.
func BenchmarkVerifyRepeated(b *testing.B) {
	ctx := context.Background()
	kr := benchRing(b, "ES256")
	v := NewVerifier(kr, testIssuer)
	tok := mint(b, kr, time.Hour)
	if _, err := v.Verify(ctx, tok, testAudience); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok, testAudience); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRepeatedParallel is the cached path under concurrent
// requests, each goroutine with its own token among many cached ones.
func BenchmarkVerifyRepeatedParallel(b *testing.B) {
	ctx := context.Background()
	kr := benchRing(b, "ES256")
	v := NewVerifier(kr, testIssuer)
	toks := make([]string, 64)
	for i := range toks {
		toks[i] = mint(b, kr, time.Hour)
		if _, err := v.Verify(ctx, toks[i], testAudience); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Verify(ctx, toks[i%len(toks)], testAudience); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkMintAccessToken(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			kr := benchRing(b, alg)
			claims := validClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.MintAccessToken(claims, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
