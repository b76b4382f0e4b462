package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// apiOptions returns the request-stack changes for this replica's
// endpoint and settings. They apply to every operation.
func (r *resolved) apiOptions() []func(*middleware.Stack) error {
	var opts []func(*middleware.Stack) error
	if !r.signPayload {
		opts = append(opts, useUnsignedPayload)
	}
	// Third-party servers often reject aws-chunked bodies with trailing
	// checksums; unsigned payloads cannot carry them either.
	if !r.signPayload || r.endpoint != "" {
		opts = append(opts, removeChecksumTrailer)
	}
	if r.provider == providerTigris {
		opts = append(opts, setHeader("LitestreamTigrisConsistent", "X-Tigris-Consistent", "true"))
	}
	if r.provider == providerGCS {
		opts = append(opts, unsignedAcceptEncoding)
	}
	return opts
}

// useUnsignedPayload sends UNSIGNED-PAYLOAD instead of the body's SHA-256
// (sign-payload: false). Operations without a payload hash are untouched.
func useUnsignedPayload(stack *middleware.Stack) error {
	_ = v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware(stack)
	return nil
}

func removeChecksumTrailer(stack *middleware.Stack) error {
	_, _ = stack.Finalize.Remove("addInputChecksumTrailer")
	return nil
}

func setHeader(id, name, value string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc(id, func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set(name, value)
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
	}
}

// unsignedAcceptEncoding keeps Accept-Encoding out of the signature:
// Google Cloud Storage's XML API rewrites that header, which would break
// the signature. The header is removed before signing and put back after.
func unsignedAcceptEncoding(stack *middleware.Stack) error {
	const key = "litestreamAcceptEncoding"
	before := middleware.FinalizeMiddlewareFunc("LitestreamGCSAcceptEncodingOff", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			ctx = middleware.WithStackValue(ctx, key, req.Header.Get("Accept-Encoding"))
			req.Header.Del("Accept-Encoding")
		}
		return next.HandleFinalize(ctx, in)
	})
	after := middleware.FinalizeMiddlewareFunc("LitestreamGCSAcceptEncodingOn", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if v, _ := middleware.GetStackValue(ctx, key).(string); v != "" {
				req.Header.Set("Accept-Encoding", v)
			}
		}
		return next.HandleFinalize(ctx, in)
	})
	if err := stack.Finalize.Insert(before, "Signing", middleware.Before); err != nil {
		return err
	}
	return stack.Finalize.Insert(after, "Signing", middleware.After)
}

// addContentMD5 sets Content-MD5 from the request body, before signing.
// S3 requires it (or another checksum) on DeleteObjects and several
// S3-compatible servers accept only Content-MD5.
func addContentMD5(stack *middleware.Stack) error {
	mw := middleware.FinalizeMiddlewareFunc("LitestreamContentMD5", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		req, ok := in.Request.(*smithyhttp.Request)
		if !ok || req.Header.Get("Content-MD5") != "" {
			return next.HandleFinalize(ctx, in)
		}
		if body := req.GetStream(); body != nil {
			h := md5.New()
			if _, err := io.Copy(h, body); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("compute Content-MD5: %w", err)
			}
			if err := req.RewindStream(); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("compute Content-MD5: %w", err)
			}
			req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
		}
		return next.HandleFinalize(ctx, in)
	})
	if err := stack.Finalize.Insert(mw, "Signing", middleware.Before); err != nil {
		return stack.Finalize.Add(mw, middleware.After)
	}
	return nil
}
