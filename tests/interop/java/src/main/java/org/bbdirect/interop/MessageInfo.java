package org.bbdirect.interop;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.mail.Address;
import javax.mail.BodyPart;
import javax.mail.Header;
import javax.mail.MessagingException;
import javax.mail.Multipart;
import javax.mail.Part;
import javax.mail.internet.ContentType;
import javax.mail.internet.InternetAddress;
import javax.mail.internet.InternetHeaders;
import javax.mail.internet.MimeMessage;

import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1Primitive;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.RSAESOAEPparams;
import org.bouncycastle.cms.RecipientInformation;
import org.bouncycastle.mail.smime.SMIMEEnveloped;
import org.nhindirect.stagent.mail.notifications.MDNStandard;
import org.nhindirect.stagent.mail.notifications.Notification;

/** Describes a message for the JSON report: headers, attachments (with SHA-256), MDN fields, CMS algorithms. */
final class MessageInfo {
    private MessageInfo() {}

    static Map<String, Object> headers(MimeMessage m) throws MessagingException {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("from", first(m.getFrom()));
        out.put("to", addresses(m.getRecipients(javax.mail.Message.RecipientType.TO)));
        out.put("cc", addresses(m.getRecipients(javax.mail.Message.RecipientType.CC)));
        out.put("subject", m.getSubject());
        out.put("message_id", m.getMessageID());
        out.put("content_type", baseType(m.getContentType()));
        out.put("disposition_notification_options", m.getHeader("Disposition-Notification-Options", ","));
        return out;
    }

    private static String first(Address[] a) {
        return (a == null || a.length == 0) ? null : ((InternetAddress) a[0]).getAddress();
    }

    private static List<String> addresses(Address[] a) {
        List<String> out = new ArrayList<>();
        if (a != null) {
            for (Address x : a) out.add(((InternetAddress) x).getAddress());
        }
        return out;
    }

    static String baseType(String contentType) {
        if (contentType == null) return null;
        try {
            return new ContentType(contentType).getBaseType().toLowerCase();
        } catch (MessagingException e) {
            return contentType;
        }
    }

    /** Leaf parts that carry a file name or are not the text body; decoded bytes are hashed (and saved). */
    static List<Map<String, Object>> attachments(Part p, Path extractDir) throws Exception {
        List<Map<String, Object>> out = new ArrayList<>();
        walk(p, out, extractDir, new StringBuilder());
        return out;
    }

    static String text(Part p) throws Exception {
        StringBuilder sb = new StringBuilder();
        walk(p, null, null, sb);
        return sb.toString();
    }

    private static void walk(Part p, List<Map<String, Object>> out, Path dir, StringBuilder text) throws Exception {
        Object content = p.getContent();
        if (content instanceof Multipart mp) {
            for (int i = 0; i < mp.getCount(); i++) {
                BodyPart bp = mp.getBodyPart(i);
                walk(bp, out, dir, text);
            }
            return;
        }
        String filename = p.getFileName();
        String type = baseType(p.getContentType());
        if (filename == null && type != null && type.startsWith("text/plain")) {
            if (content instanceof String s) text.append(s);
            return;
        }
        if (out == null) return;
        byte[] data;
        try (InputStream in = p.getInputStream()) {
            // Not readAllBytes(): it asks for 0 bytes once its first 8 KiB buffer is full, and JavaMail's
            // BASE64DecoderStream answers a 0-byte read with -1 (EOF), truncating every larger attachment.
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            byte[] chunk = new byte[65536];
            for (int n; (n = in.read(chunk, 0, chunk.length)) != -1; ) all.write(chunk, 0, n);
            data = all.toByteArray();
        }
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("filename", filename);
        a.put("content_type", type);
        a.put("size", data.length);
        a.put("sha256", sha256(data));
        out.add(a);
        if (dir != null && filename != null) {
            Files.createDirectories(dir);
            Path target = dir.resolve(Path.of(filename).getFileName().toString());
            Files.write(target, data);
        }
    }

    static String sha256(byte[] data) throws NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }

    /** RFC 3798 fields of an MDN, parsed by the RI's own Notification helper; null when not an MDN. */
    static Map<String, Object> mdn(MimeMessage m) throws MessagingException {
        if (!MDNStandard.isReport(m)) return null;
        InternetHeaders fields = Notification.getNotificationFieldsAsHeaders(m);
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, Object> all = new LinkedHashMap<>();
        Enumeration<?> e = fields.getAllHeaders();
        while (e.hasMoreElements()) {
            Header h = (Header) e.nextElement();
            all.put(h.getName(), h.getValue() == null ? "" : h.getValue().trim());
        }
        out.put("fields", all);
        out.put("disposition", fields.getHeader("Disposition", ","));
        out.put("original_message_id", fields.getHeader("Original-Message-ID", ","));
        out.put("final_recipient", fields.getHeader("Final-Recipient", ","));
        out.put("reporting_ua", fields.getHeader("Reporting-UA", ","));
        out.put("final_destination_delivery", fields.getHeader("X-DIRECT-FINAL-DESTINATION-DELIVERY") != null);
        return out;
    }

    /** Content-encryption and key-transport algorithms of an enveloped message, read with BouncyCastle. */
    static Map<String, Object> envelope(byte[] raw) {
        Map<String, Object> out = new LinkedHashMap<>();
        try {
            MimeMessage m = new MimeMessage(javax.mail.Session.getInstance(new java.util.Properties()),
                    new ByteArrayInputStream(raw));
            SMIMEEnveloped env = new SMIMEEnveloped(m);
            out.put("content_encryption_oid", env.getEncryptionAlgOID());
            List<Map<String, Object>> recips = new ArrayList<>();
            for (RecipientInformation ri : env.getRecipientInfos().getRecipients()) {
                Map<String, Object> r = new LinkedHashMap<>();
                String oid = ri.getKeyEncryptionAlgOID();
                r.put("key_encryption_oid", oid);
                r.put("key_encryption", keyEncryptionName(oid, ri.getKeyEncryptionAlgParams()));
                recips.add(r);
            }
            out.put("recipients", recips);
        } catch (Exception ex) {
            out.put("error", ex.toString());
        }
        return out;
    }

    private static String keyEncryptionName(String oid, byte[] params) throws IOException {
        if (PKCSObjectIdentifiers.rsaEncryption.getId().equals(oid)) return "rsa-pkcs1v15";
        if (PKCSObjectIdentifiers.id_RSAES_OAEP.getId().equals(oid)) {
            if (params == null || params.length == 0) return "rsa-oaep-sha1";
            ASN1Primitive prim = ASN1Primitive.fromByteArray(params);
            RSAESOAEPparams p = RSAESOAEPparams.getInstance(prim);
            ASN1ObjectIdentifier h = p.getHashAlgorithm().getAlgorithm();
            if (h.equals(org.bouncycastle.asn1.nist.NISTObjectIdentifiers.id_sha256)) return "rsa-oaep-sha256";
            if (h.equals(org.bouncycastle.asn1.oiw.OIWObjectIdentifiers.idSHA1)) return "rsa-oaep-sha1";
            return "rsa-oaep-" + h.getId();
        }
        return oid;
    }
}
