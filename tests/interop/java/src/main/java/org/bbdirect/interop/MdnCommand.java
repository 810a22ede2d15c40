package org.bbdirect.interop;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.mail.internet.InternetAddress;

import org.nhindirect.stagent.DefaultNHINDAgent;
import org.nhindirect.stagent.IncomingMessage;
import org.nhindirect.stagent.NHINDAddress;
import org.nhindirect.stagent.OutgoingMessage;
import org.nhindirect.stagent.cryptography.SMIMECryptographerImpl;
import org.nhindirect.stagent.mail.Message;
import org.nhindirect.stagent.mail.notifications.Notification;
import org.nhindirect.stagent.mail.notifications.NotificationHelper;
import org.nhindirect.stagent.mail.notifications.NotificationMessage;
import org.nhindirect.stagent.mail.notifications.NotificationType;
import org.nhindirect.stagent.mail.notifications.ReportingUserAgent;

/**
 * {@code mdn}: accept a received Direct message with the RI agent and answer it with an MDN built by the RI's
 * notification classes (processed, dispatched with the X-DIRECT-FINAL-DESTINATION-DELIVERY extension, or
 * failed), signed and encrypted back to the original sender by processOutgoing.
 */
final class MdnCommand {
    private MdnCommand() {}

    static Map<String, Object> run(Args a) throws Exception {
        byte[] raw = Files.readAllBytes(Path.of(a.req("in")));
        RiAgent.Identity self = RiAgent.identity(a.all("cert"), a.all("key"));
        List<X509Certificate> anchors = RiAgent.certs(a.all("anchor"));
        List<X509Certificate> peers = RiAgent.leaves(a.all("peer-cert"));
        if (peers.isEmpty()) throw new Args.UsageException("--peer-cert (the original sender's certificate) is required");
        SMIMECryptographerImpl crypto = RiAgent.cryptographer(a.opt("enc", "AES256"), a.opt("digest", "SHA256"));

        Message outer = new Message(new ByteArrayInputStream(raw));
        Set<String> domains = new LinkedHashSet<>(a.all("domain"));
        if (domains.isEmpty()) {
            for (javax.mail.Address x : outer.getAllRecipients()) {
                String addr = ((InternetAddress) x).getAddress();
                domains.add(addr.substring(addr.indexOf('@') + 1).toLowerCase());
            }
        }
        DefaultNHINDAgent agent = RiAgent.agent(domains, self, peers, anchors, crypto);
        IncomingMessage in = agent.processIncoming(outer);
        NHINDAddress me = in.getDomainRecipients().get(0);

        NotificationType type = switch (a.opt("disposition", "processed")) {
            case "processed" -> NotificationType.Processed;
            case "dispatched" -> NotificationType.Dispatched;
            case "failed" -> NotificationType.Failed;
            default -> throw new Args.UsageException("--disposition processed|dispatched|failed");
        };
        Notification n = new Notification(type);
        n.setReportingAgent(new ReportingUserAgent(me.getHost(), "Direct Project Java RI (interop harness)"));
        if (type == NotificationType.Dispatched) {
            // Implementation Guide for Delivery Notification in Direct, 3.4: the extension field, not a header.
            n.setExtensions(List.of(org.nhindirect.common.mail.MDNStandard.DispositionOption_TimelyAndReliable));
        }
        NotificationMessage mdn = NotificationHelper.createNotificationMessage(in.getMessage(), new InternetAddress(me.getAddress()), n);
        if (mdn == null) throw new IllegalStateException("the RI declined to create an MDN (the message is an MDN)");
        mdn.saveChanges();
        OutgoingMessage sealed = agent.processOutgoing(new OutgoingMessage(mdn));

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        sealed.getMessage().writeTo(bytes);
        Files.write(Path.of(a.req("out")), bytes.toByteArray());

        Map<String, Object> res = new LinkedHashMap<>();
        res.put("ok", true);
        res.put("error", null);
        res.put("original_message_id", in.getMessage().getMessageID());
        res.put("outer", MessageInfo.headers(sealed.getMessage()));
        res.put("mdn", MessageInfo.mdn(mdn));
        return res;
    }
}
