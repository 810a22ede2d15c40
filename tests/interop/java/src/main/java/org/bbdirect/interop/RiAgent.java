package org.bbdirect.interop;

import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

import org.nhindirect.common.crypto.CryptoExtensions;
import org.nhindirect.stagent.DefaultNHINDAgent;
import org.nhindirect.stagent.cert.X509CertificateEx;
import org.nhindirect.stagent.cert.impl.UniformCertificateStore;
import org.nhindirect.stagent.cryptography.DigestAlgorithm;
import org.nhindirect.stagent.cryptography.EncryptionAlgorithm;
import org.nhindirect.stagent.cryptography.SMIMECryptographerImpl;
import org.nhindirect.stagent.trust.DefaultTrustAnchorResolver;
import org.nhindirect.stagent.trust.TrustModel;

/**
 * Builds a reference-implementation security and trust agent from plain files.
 *
 * Why not the RI's own configuration services: the tests hand each peer exactly the keys, certificates and
 * anchors of one scenario, so the agent is wired directly — private certificates (with keys) through a
 * UniformCertificateStore of X509CertificateEx, the peer's public certificates through another, and the
 * same anchors for both directions. Everything else (cryptographer, trust model, policy) is the RI's stock code.
 */
final class RiAgent {
    private RiAgent() {}

    static {
        CryptoExtensions.registerJCEProviders();
    }

    static final class Identity {
        final List<X509CertificateEx> certs = new ArrayList<>();
    }

    /** Pairs each --cert with the --key at the same position. */
    static Identity identity(List<String> certFiles, List<String> keyFiles) throws Exception {
        if (certFiles.isEmpty() || certFiles.size() != keyFiles.size()) {
            throw new Args.UsageException("give one --key for every --cert");
        }
        Identity id = new Identity();
        for (int i = 0; i < certFiles.size(); i++) {
            X509Certificate cert = Pem.certificate(certFiles.get(i));
            PrivateKey key = Pem.privateKey(keyFiles.get(i));
            id.certs.add(X509CertificateEx.fromX509Certificate(cert, key));
        }
        return id;
    }

    /** The first (leaf) certificate of each file: a peer's chain file must not turn its CA into a recipient. */
    static List<X509Certificate> leaves(List<String> files) throws Exception {
        List<X509Certificate> out = new ArrayList<>();
        for (String f : files) {
            out.add(Pem.certificate(f));
        }
        return out;
    }

    /** Every certificate of every file (anchors). */
    static List<X509Certificate> certs(List<String> files) throws Exception {
        List<X509Certificate> out = new ArrayList<>();
        for (String f : files) {
            out.addAll(Pem.certificates(f));
        }
        return out;
    }

    static EncryptionAlgorithm encryption(String name) {
        return switch (name.toUpperCase()) {
            case "AES128" -> EncryptionAlgorithm.AES128;
            case "AES192" -> EncryptionAlgorithm.AES192;
            case "AES256" -> EncryptionAlgorithm.AES256;
            default -> throw new Args.UsageException("unknown --enc " + name);
        };
    }

    static DigestAlgorithm digest(String name) {
        return switch (name.toUpperCase().replace("-", "")) {
            case "SHA1" -> DigestAlgorithm.SHA1WITHRSA;
            case "SHA256" -> DigestAlgorithm.SHA256WITHRSA;
            case "SHA384" -> DigestAlgorithm.SHA384WITHRSA;
            case "SHA512" -> DigestAlgorithm.SHA512WITHRSA;
            default -> throw new Args.UsageException("unknown --digest " + name);
        };
    }

    /** The RI's stock cryptographer; its constructor itself refuses SHA-1 (AS 1.3 / ANSI/DS 2019-01-100-2021). */
    static SMIMECryptographerImpl cryptographer(String enc, String digest) {
        SMIMECryptographerImpl c = new SMIMECryptographerImpl(encryption(enc), digest(digest));
        c.setStrongDigestEnforced(true);
        c.setStrongEncryptionEnforced(true);
        return c;
    }

    static DefaultNHINDAgent agent(Collection<String> domains, Identity self, Collection<X509Certificate> peers,
                                   Collection<X509Certificate> anchors, SMIMECryptographerImpl cryptographer) {
        List<X509Certificate> own = new ArrayList<>(self.certs);
        UniformCertificateStore privateStore = new UniformCertificateStore(own);
        UniformCertificateStore publicStore = new UniformCertificateStore(new ArrayList<>(peers));
        DefaultTrustAnchorResolver anchorResolver =
                new DefaultTrustAnchorResolver(new ArrayList<>(anchors), new ArrayList<>(anchors));
        return new DefaultNHINDAgent(new ArrayList<>(domains), privateStore, List.of(publicStore), anchorResolver,
                new TrustModel(), cryptographer);
    }
}
