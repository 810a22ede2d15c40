package org.bbdirect.interop;

import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.mail.Address;
import javax.mail.internet.ContentType;
import javax.mail.internet.InternetAddress;
import javax.mail.internet.MimeMultipart;
import javax.mail.util.ByteArrayDataSource;

import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.util.Selector;
import org.nhindirect.stagent.DefaultMessageSignatureImpl;
import org.nhindirect.stagent.DefaultNHINDAgent;
import org.nhindirect.stagent.IncomingMessage;
import org.nhindirect.stagent.NHINDAddress;
import org.nhindirect.stagent.cert.X509CertificateEx;
import org.nhindirect.stagent.cryptography.SMIMECryptographerImpl;
import org.nhindirect.stagent.cryptography.SMIMEStandard;
import org.nhindirect.stagent.cryptography.SignedEntity;
import org.nhindirect.stagent.mail.Message;
import org.nhindirect.stagent.mail.MimeEntity;

/**
 * {@code unseal}: run a received Direct message through the RI's DefaultNHINDAgent.processIncoming
 * (decrypt, verify, trust, routing-tamper policy, unwrap), then independently re-check the signature with
 * SMIMECryptographerImpl.checkSignature, the RI entry point that also enforces the strong-digest rule
 * (the agent pipeline itself verifies with BouncyCastle only). Prints one JSON object.
 */
final class UnsealCommand {
    private UnsealCommand() {}

    static Map<String, Object> run(Args a) throws Exception {
        byte[] raw = Files.readAllBytes(Path.of(a.req("in")));
        RiAgent.Identity self = RiAgent.identity(a.all("cert"), a.all("key"));
        List<X509Certificate> anchors = RiAgent.certs(a.all("anchor"));
        List<X509Certificate> peers = RiAgent.leaves(a.all("peer-cert"));
        SMIMECryptographerImpl crypto = RiAgent.cryptographer(a.opt("enc", "AES256"), a.opt("digest", "SHA256"));
        Path extract = a.opt("extract", null) == null ? null : Path.of(a.opt("extract", null));

        Message outer = new Message(new ByteArrayInputStream(raw));
        Set<String> domains = new LinkedHashSet<>(a.all("domain"));
        if (domains.isEmpty()) {
            domains.addAll(recipientDomains(outer));
        }

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("outer", MessageInfo.headers(outer));
        out.put("envelope", MessageInfo.envelope(raw));
        out.put("strict", strictCheck(outer, self, anchors, crypto));

        DefaultNHINDAgent agent = RiAgent.agent(domains, self, peers.isEmpty() ? anchors : peers, anchors, crypto);
        IncomingMessage in;
        try {
            in = agent.processIncoming(outer);
        } catch (RuntimeException e) {
            // A rejection is a result, not a crash: keep what was learned above (envelope, strict check).
            out.put("ok", false);
            out.put("error", Harness.describe(e));
            return out;
        }
        Message inner = in.getMessage();

        List<Map<String, Object>> signers = new ArrayList<>();
        if (in.getSenderSignatures() != null) {
            for (DefaultMessageSignatureImpl s : in.getSenderSignatures()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("subject", s.getSignerCert().getSubjectX500Principal().getName());
                m.put("signature_valid", s.isSignatureValid());
                m.put("thumbprint_verified", s.isThumbprintVerified());
                m.put("org_certificate", s.isUseOrgCertificate());
                m.put("digest_oid", s.getSigner().getDigestAlgOID());
                signers.add(m);
            }
        }
        List<Map<String, Object>> recips = new ArrayList<>();
        for (NHINDAddress r : in.getDomainRecipients()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("address", r.getAddress());
            m.put("status", String.valueOf(r.getStatus()));
            recips.add(m);
        }
        out.put("ok", true);
        out.put("error", null);
        out.put("signers", signers);
        out.put("recipients", recips);
        out.put("message", MessageInfo.headers(inner));
        out.put("text", MessageInfo.text(inner));
        out.put("attachments", MessageInfo.attachments(inner, extract));
        out.put("mdn", MessageInfo.mdn(inner));
        return out;
    }

    private static Set<String> recipientDomains(Message m) throws Exception {
        Set<String> out = new LinkedHashSet<>();
        Address[] all = m.getAllRecipients();
        if (all != null) {
            for (Address x : all) {
                String addr = ((InternetAddress) x).getAddress();
                out.add(addr.substring(addr.indexOf('@') + 1).toLowerCase());
            }
        }
        return out;
    }

    /** Decrypt with the RI cryptographer and run its checkSignature against the anchors; never throws. */
    static Map<String, Object> strictCheck(Message outer, RiAgent.Identity self, Collection<X509Certificate> anchors,
                                           SMIMECryptographerImpl crypto) {
        Map<String, Object> out = new LinkedHashMap<>();
        try {
            MimeEntity decrypted = crypto.decrypt(outer.extractMimeEntity(), new ArrayList<X509CertificateEx>(self.certs));
            ContentType ct = new ContentType(decrypted.getContentType());
            out.put("decrypted_content_type", ct.getBaseType().toLowerCase());
            if (!SMIMEStandard.isContentMultipartSignature(ct)) {
                out.put("ok", false);
                out.put("error", "decrypted content is not multipart/signed");
                return out;
            }
            out.put("micalg", ct.getParameter("micalg"));
            out.put("protocol", ct.getParameter("protocol"));
            MimeMultipart mm = new MimeMultipart(new ByteArrayDataSource(decrypted.getRawInputStream(), decrypted.getContentType()));
            SignedEntity signed = SignedEntity.load(mm);
            out.put("signed_content_type", MessageInfo.baseType(signed.getContent().getContentType()));
            CMSSignedData sd = crypto.deserializeSignatureEnvelope(signed);
            List<String> digests = new ArrayList<>();
            X509Certificate signerCert = null;
            for (SignerInformation si : sd.getSignerInfos().getSigners()) {
                digests.add(si.getDigestAlgOID());
                @SuppressWarnings("unchecked")
                Collection<X509CertificateHolder> match = sd.getCertificates().getMatches((Selector<X509CertificateHolder>) si.getSID());
                if (!match.isEmpty() && signerCert == null) {
                    signerCert = new JcaX509CertificateConverter().getCertificate(match.iterator().next());
                }
            }
            out.put("digest_oids", digests);
            out.put("certificates_in_signature", sd.getCertificates().getMatches(null).size());
            if (signerCert == null) {
                out.put("ok", false);
                out.put("error", "signer certificate not in the signature");
                return out;
            }
            out.put("signer", signerCert.getSubjectX500Principal().getName());
            crypto.checkSignature(signed, signerCert, anchors);
            out.put("ok", true);
            out.put("error", null);
        } catch (Exception e) {
            out.put("ok", false);
            out.put("error", Harness.describe(e));
        }
        return out;
    }
}
