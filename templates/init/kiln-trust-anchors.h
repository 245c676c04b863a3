/*
 * The trusted certificates of kiln's TLS programs (kiln-https, kiln-cwlogs, kiln-syslog-tls):
 * every CERTIFICATE in a PEM file becomes a BearSSL trust anchor (a CA certificate anchors
 * chains; any other certificate is trusted as that one server key). Included by the program's
 * .c file (one translation unit, no libc) after kiln-freestanding.h, the SYS_open/SYS_read/SYS_close
 * numbers, and bad_cafile(why), which reports and exits.
 * A program may define MAX_ANCHORS and ANCHOR_ARENA_BYTES first (Mozilla's whole set: about 150
 * roots, a DN and a key about 1 KiB each).
 */
#ifndef MAX_ANCHORS
#define MAX_ANCHORS 160
#endif
static br_x509_trust_anchor anchors[MAX_ANCHORS];
static size anchor_count;
#ifndef ANCHOR_ARENA_BYTES
#define ANCHOR_ARENA_BYTES (256 * 1024)
#endif
static unsigned char arena[ANCHOR_ARENA_BYTES]; /* DNs and public keys of the anchors */
static size arena_used;
static unsigned char der[16 * 1024];    /* the certificate being decoded */
static size der_len;
static int der_overflow;

static unsigned char *keep(const void *data, size len) {
  if (len > sizeof arena - arena_used) bad_cafile("too many certificates");
  unsigned char *at = arena + arena_used;
  for (size i = 0; i < len; i++) at[i] = ((const unsigned char *)data)[i];
  arena_used += len;
  return at;
}

static void append_der(void *ctx, const void *data, size_t len) {
  (void)ctx;
  if (len > sizeof der - der_len) { der_overflow = 1; return; }
  for (size i = 0; i < len; i++) der[der_len + i] = ((const unsigned char *)data)[i];
  der_len += len;
}

/* The decoder hands the subject DN over in pieces: it lands at the end of the arena. */
static void append_dn(void *ctx, const void *data, size_t len) {
  br_x500_name *dn = ctx;
  keep(data, len);
  dn->len += len;
}

static void add_anchor(void) {
  if (der_overflow) bad_cafile("a certificate is larger than 16 KiB");
  if (anchor_count == MAX_ANCHORS) bad_cafile("too many certificates");
  br_x509_trust_anchor *ta = &anchors[anchor_count];
  br_x509_decoder_context dc;
  ta->dn.data = arena + arena_used;
  ta->dn.len = 0;
  br_x509_decoder_init(&dc, append_dn, &ta->dn);
  br_x509_decoder_push(&dc, der, der_len);
  br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
  if (!pk) bad_cafile("a certificate cannot be decoded");
  /* A CA certificate anchors chains; any other certificate is trusted as that one server key. */
  ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
  ta->pkey.key_type = pk->key_type;
  if (pk->key_type == BR_KEYTYPE_RSA) {
    ta->pkey.key.rsa.n = keep(pk->key.rsa.n, pk->key.rsa.nlen);
    ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
    ta->pkey.key.rsa.e = keep(pk->key.rsa.e, pk->key.rsa.elen);
    ta->pkey.key.rsa.elen = pk->key.rsa.elen;
  } else if (pk->key_type == BR_KEYTYPE_EC) {
    ta->pkey.key.ec.curve = pk->key.ec.curve;
    ta->pkey.key.ec.q = keep(pk->key.ec.q, pk->key.ec.qlen);
    ta->pkey.key.ec.qlen = pk->key.ec.qlen;
  } else {
    bad_cafile("a certificate has a key type other than RSA or EC");
  }
  anchor_count++;
}

static void load_anchors(const char *file) {
  long fd = sys3(SYS_open, (long)file, 0 /* O_RDONLY */, 0);
  if (fd < 0) bad_cafile("cannot open the file");
  br_pem_decoder_context pc;
  br_pem_decoder_init(&pc);
  static unsigned char chunk[4096];
  int in_certificate = 0;
  for (;;) {
    long n = sys3(SYS_read, fd, (long)chunk, sizeof chunk);
    if (n < 0) bad_cafile("cannot read the file");
    if (n == 0) break;
    size off = 0;
    while (off < (size)n) {
      off += br_pem_decoder_push(&pc, chunk + off, (size)n - off);
      switch (br_pem_decoder_event(&pc)) {
        case BR_PEM_BEGIN_OBJ:
          in_certificate = same_text(br_pem_decoder_name(&pc), "CERTIFICATE")
            || same_text(br_pem_decoder_name(&pc), "X509 CERTIFICATE");
          der_len = 0;
          der_overflow = 0;
          br_pem_decoder_setdest(&pc, in_certificate ? append_der : 0, 0);
          break;
        case BR_PEM_END_OBJ:
          if (in_certificate) add_anchor();
          in_certificate = 0;
          break;
        case BR_PEM_ERROR:
          bad_cafile("not valid PEM");
      }
    }
  }
  sys3(SYS_close, fd, 0, 0);
  if (anchor_count == 0) bad_cafile("holds no PEM certificate");
}
